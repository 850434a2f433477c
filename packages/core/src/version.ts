import { createRequire } from 'node:module';

/** Set by the CLI's bundler (apps/cli/scripts/bundle.mjs), where `../package.json` is not this package's. */
declare const __STOWAGE_CORE_VERSION__: string | undefined;

/** This package's version, recorded in every manifest. */
export const TOOL_VERSION: string =
  typeof __STOWAGE_CORE_VERSION__ === 'string' ? __STOWAGE_CORE_VERSION__ : (createRequire(import.meta.url)('../package.json') as { version: string }).version;
