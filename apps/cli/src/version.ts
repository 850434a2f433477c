import { createRequire } from 'node:module';

/** Set by the CLI's bundler (apps/cli/scripts/bundle.mjs): the bundled bin reads no package.json to start. */
declare const __STOWAGE_CLI_VERSION__: string | undefined;

/** The version of @stowage/cli (`stowage --version`, `npx -y @stowage/cli@<version>` in schedules). */
export const CLI_VERSION: string =
  typeof __STOWAGE_CLI_VERSION__ === 'string' ? __STOWAGE_CLI_VERSION__ : (createRequire(import.meta.url)('../package.json') as { version: string }).version;
