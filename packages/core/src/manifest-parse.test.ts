import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { manifestKey } from './layout.js';
import { parseManifest } from './manifest.js';
import { makeWorkspace, type Workspace } from './test/harness.js';

let ws: Workspace;
let text: string;
beforeAll(async () => {
  ws = await makeWorkspace();
  const { manifest } = await backup(ws.engine, { type: 'full' });
  text = await readFile(join(ws.backups, manifestKey(manifest.type, manifest.id)), 'utf8');
});
afterAll(() => ws.dispose());

describe('parseManifest of the same text twice (a manifest read at every destination)', () => {
  it('gives equal manifests that do not share state: changing one changes no later parse', () => {
    const reference = parseManifest(text, 'reference');
    const first = parseManifest(text, 'a');
    first.replicas.intruder = { committedAt: 'x', verifiedAt: 'x', verifiedBy: 'sha256-readback' };
    first.artifacts[0]!.key = '../elsewhere';
    const second = parseManifest(text, 'b');
    expect(second).toEqual(reference);
    expect(reference.replicas.intruder).toBeUndefined();
    expect(second.replicas.intruder).toBeUndefined();
    expect(second.artifacts[0]!.key).not.toBe('../elsewhere');
    expect(second).not.toBe(parseManifest(text, 'd'));
  });

  it('still refuses a flipped byte, however often the good text was parsed', () => {
    const flipped = text.replace(/"size": (\d)/, (_, d: string) => `"size": ${(Number(d) + 1) % 10}`);
    expect(flipped).not.toBe(text);
    expect(() => parseManifest(flipped, 'flipped')).toThrow(/does not match its checksum/);
    expect(() => parseManifest(flipped, 'flipped')).toThrow(/does not match its checksum/);
  });
});
