import { createRequire } from 'node:module';

/** This package's version, recorded in every manifest. */
export const TOOL_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
