import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StorageErrorCode, StorageRegistry } from '@stowage/storage';
import { describeStorageAdapter } from '@stowage/storage-testkit';
import { ExampleStorage } from './example.js';
import { exampleStorageFactory } from './factory.js';

// The conformance suite: every test gets a fresh adapter over an empty folder, removed afterwards.
describeStorageAdapter({
  name: 'ExampleStorage',
  async create() {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-example-'));
    return { adapter: new ExampleStorage(join(dir, 'store')), cleanup: () => rm(dir, { recursive: true, force: true }) };
  },
});

describe('exampleStorageFactory', () => {
  const registry = new StorageRegistry().register(exampleStorageFactory);
  const baseDir = resolve('/srv/app');

  it('opens example: URLs relative to the config folder, with validated options', async () => {
    const adapter = await registry.open({ url: 'example:./backups', options: { maxParallelism: 2 } }, { baseDir });
    expect(adapter).toBeInstanceOf(ExampleStorage);
    expect((adapter as ExampleStorage).folder).toBe(join(baseDir, 'backups'));
    expect(adapter.capabilities.maxParallelism).toBe(2);
    await expect(registry.open({ url: 'example:./b', options: { maxParallelism: 0 } }, { baseDir })).rejects.toMatchObject({
      code: StorageErrorCode.InvalidConfig,
      message: expect.stringMatching(/^options\.maxParallelism: /),
    });
  });
});
