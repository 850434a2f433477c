import { withChaos } from '@stowage/storage-testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { makeWorkspace, type Workspace } from './test/harness.js';

let ws: Workspace | undefined;
afterEach(async () => ws?.dispose());

describe('retries are logged through onRetry', () => {
  it('each retry of a transient failure is a warning naming the destination, operation, key and code; the backup still succeeds', async () => {
    ws = await makeWorkspace({ engine: { retry: { baseDelayMs: 1 }, wrappers: [(adapter) => withChaos(adapter, { put: { fail: [1, 2] } })] } });
    const { outcome } = await backup(ws.engine, { type: 'full' });
    expect(outcome).toBe('ok');
    const retries = ws.warnings.filter((w) => w.includes('retry'));
    expect(retries).toEqual([
      expect.stringMatching(/^local: put '\S+' failed \(stowage\.storage\.transient: .*\); retry 1 in \d+ ms$/),
      expect.stringMatching(/^local: put '\S+' failed \(stowage\.storage\.transient: .*\); retry 2 in \d+ ms$/),
    ]);
  });

  it('a caller’s own onRetry replaces the warning', async () => {
    const seen: number[] = [];
    ws = await makeWorkspace({
      engine: { retry: { baseDelayMs: 1, onRetry: (event) => seen.push(event.attempt) }, wrappers: [(adapter) => withChaos(adapter, { put: { fail: [1] } })] },
    });
    await backup(ws.engine, { type: 'full' });
    expect(seen).toEqual([1]);
    expect(ws.warnings.filter((w) => w.includes('retry'))).toEqual([]);
  });
});
