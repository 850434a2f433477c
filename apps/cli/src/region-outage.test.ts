import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGreaterWmsDatabase } from '@stowage/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const TSX = join(REPO, 'node_modules', '.bin', 'tsx');

let dir: string;
function stowage(...args: string[]) {
  const env = { ...process.env, STOWAGE_CONFIG: '', DOWN_KEY: 'key', DOWN_SECRET: 'secret' };
  const result = spawnSync(TSX, [join(REPO, 'apps/cli/src/bin/stowage.ts'), ...args], { cwd: dir, encoding: 'utf8', env });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-outage-'));
  createGreaterWmsDatabase(join(dir, 'db.sqlite3'), { seed: 3 });
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  const down = {
    endpoint: `http://127.0.0.1:${port}`,
    forcePathStyle: true,
    region: 'us-east-1',
    maxAttempts: 1,
    accessKeyIdEnv: 'DOWN_KEY',
    secretAccessKeyEnv: 'DOWN_SECRET',
  };
  const config = {
    source: { database: 'db.sqlite3' },
    destinations: [
      { name: 'local', url: 'backups' },
      { name: 's3-down', url: 's3://bucket/stowage', options: down },
    ],
  };
  await writeFile(join(dir, 'stowage.config.json'), JSON.stringify({ ...config, quorum: 1 }));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('stowage with one region unreachable', () => {
  it('backs up at the others (exit 3 with quorum 1); sync and verify skip the region with a warning naming it', () => {
    const degraded = stowage('backup', '--type', 'full', '--json');
    expect(degraded.code).toBe(3);
    expect(JSON.parse(degraded.stdout)).toMatchObject({
      ok: false,
      command: 'backup',
      result: { outcome: 'degraded', committed: ['local'], failures: [{ destination: 's3-down', code: 'stowage.storage.transient' }] },
    });
    expect(degraded.stderr).toMatch(/destination s3-down is left out of this run: its lock cannot be taken: .*ECONNREFUSED/);
    // (Each run spends about 3 s retrying the refused connection before leaving the region out.)
    for (const command of [['sync'], ['verify', '--all']]) {
      const result = stowage(...command, '--json');
      expect(result.code, command.join(' ')).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, result: { skipped: [{ destination: 's3-down' }] } });
      expect(result.stderr).toMatch(/destination s3-down is left out of this run/);
    }
  });
});
