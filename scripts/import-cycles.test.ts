import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { findImportCycles } from './import-cycles.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const sourceRoots = ['packages', 'apps']
  .flatMap((group) => readdirSync(join(root, group)).map((name) => join(root, group, name, 'src')))
  .filter((dir) => existsSync(dir));
const scratch: string[] = [];
afterAll(async () => Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true }))));

describe('import cycles', () => {
  it('there are none in packages/*/src and apps/*/src', () => {
    expect(sourceRoots.length).toBeGreaterThan(5);
    expect(findImportCycles(sourceRoots, root).map((cycle) => cycle.join(' -> '))).toEqual([]);
  });

  it('are found through type-only imports, re-exports and folders, and only among source files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-cycles-'));
    scratch.push(dir);
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'a.ts'), "import type { B } from './sub/b.js';\nexport type A = B;\n");
    await writeFile(join(dir, 'sub', 'b.ts'), "export { c as b } from '../c.js';\nexport type B = number;\n");
    await writeFile(join(dir, 'c.ts'), "import { readFile } from 'node:fs';\nimport type { A } from './a.js';\nexport const c = 1 as A;\n");
    await writeFile(join(dir, 'd.ts'), "import { c } from './c.js';\nexport const d = c;\n");
    await writeFile(join(dir, 'd.test.ts'), "import { d } from './d.js';\nexport const e = d;\n");
    await writeFile(join(dir, 'e.ts'), "import { e } from './d.test.js';\nexport const f = e;\n");
    expect(findImportCycles([dir], dir)).toEqual([['a.ts', join('sub', 'b.ts'), 'c.ts']]);
  });
});
