import { createRequire } from 'node:module';

/** The version of @stowage/cli (`stowage --version`, `npx -y @stowage/cli@<version>` in schedules). */
export const CLI_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
