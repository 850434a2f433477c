// Regenerates apps/cli/stowage.config.schema.json from the zod schema (a test checks it is current).
import { writeFileSync } from 'node:fs';
import { configJsonSchema } from '@stowage/core';

const path = new URL('../apps/cli/stowage.config.schema.json', import.meta.url);
writeFileSync(path, `${JSON.stringify(configJsonSchema(), null, 2)}\n`);
console.log(`wrote ${path.pathname}`);
