import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nativeModuleFailure } from './native.js';

const dir = await mkdtemp(join(tmpdir(), 'stowage-native-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The error Node throws loading a damaged or foreign `.node` binary of `module`. */
async function loadFailure(module: string): Promise<Error> {
  const binary = join(dir, 'node_modules', module, 'build', 'Release', 'binding.node');
  await mkdir(join(binary, '..'), { recursive: true });
  await writeFile(binary, 'not a shared object');
  try {
    createRequire(import.meta.url)(binary);
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the load to fail');
}

describe('nativeModuleFailure', () => {
  it('names the module that cannot load, the rebuild command and the toolchain, through a cause chain', async () => {
    const wrapped = new Error('snapshot failed', { cause: await loadFailure('better-sqlite3') });
    const message = nativeModuleFailure(wrapped);
    expect(message).toMatch(/^better-sqlite3 cannot load on Node v\d+/);
    expect(message).toContain('npm rebuild better-sqlite3');
    expect(message).toContain('apt-get install python3 make g++');
    expect(nativeModuleFailure(await loadFailure('zstd-napi'))).toMatch(/^zstd-napi cannot load.*npm rebuild zstd-napi/);
  });

  it('leaves every other error alone', () => {
    expect(nativeModuleFailure(new Error('no such file'))).toBeUndefined();
    expect(nativeModuleFailure('better-sqlite3')).toBeUndefined();
  });
});
