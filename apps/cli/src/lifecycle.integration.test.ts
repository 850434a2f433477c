import { createRequire } from 'node:module';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOssTestServer, type OssTestServer } from '@stowage/oss-test-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './cli-process.test-support.js';

const ENV = { ...process.env, STOWAGE_CONFIG: '', CLI_OSS_ID: 'cli-lifecycle-id', CLI_OSS_SECRET: 'cli-lifecycle-secret' };

let dir: string;
let oss: OssTestServer;
/** The ali-oss lifecycle calls this test uses (the CLI package has ali-oss but not its types). */
interface LifecycleCalls {
  getBucketLifecycle(bucket: string): Promise<{ rules: Array<{ id: string; prefix: string; transition?: { days: string; storageClass: string } }> }>;
  putBucketLifecycle(bucket: string, rules: object[]): Promise<unknown>;
  put(key: string, body: Buffer): Promise<unknown>;
  delete(key: string): Promise<unknown>;
}
const OSS = createRequire(import.meta.url)('ali-oss') as new (options: object) => LifecycleCalls;
let admin: LifecycleCalls;

const run = (...rest: string[]) => runCli(dir, ENV, ...rest);
/** The bucket's lifecycle configuration as the server sends it. */
const rawLifecycle = async () => {
  const { res } = (await admin.getBucketLifecycle('cold')) as unknown as { res: { data: Buffer } };
  return res.data.toString('utf8');
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-cli-lifecycle-'));
  oss = await startOssTestServer({ accessKeyId: ENV.CLI_OSS_ID, accessKeySecret: ENV.CLI_OSS_SECRET, buckets: ['cold'] });
  admin = new OSS({
    accessKeyId: ENV.CLI_OSS_ID,
    accessKeySecret: ENV.CLI_OSS_SECRET,
    endpoint: oss.endpoint,
    region: 'oss-cn-hangzhou',
    bucket: 'cold',
  });
  const ossOptions = { region: 'oss-cn-hangzhou', endpoint: oss.endpoint, secure: false, accessKeyIdEnv: 'CLI_OSS_ID', accessKeySecretEnv: 'CLI_OSS_SECRET' };
  const config = {
    source: { database: 'db.sqlite3' },
    destinations: [
      { name: 'here', url: 'backups' },
      { name: 'cold', url: 'oss://cold/wms', options: ossOptions, archive: { after: '4w', storageClass: 'ColdArchive', types: ['full', 'incremental'] } },
      { name: 'warm', url: 'oss://cold/warm', options: ossOptions },
    ],
  };
  await writeFile(join(dir, 'stowage.config.json'), JSON.stringify(config));
  // The same bucket without cold's archive policy (it was deleted), and a second installation under another prefix.
  await writeFile(join(dir, 'deleted.config.json'), JSON.stringify({ ...config, destinations: config.destinations.map(({ archive: _, ...d }) => d) }));
  await writeFile(
    join(dir, 'other.config.json'),
    JSON.stringify({
      source: { database: 'other.sqlite3' },
      destinations: [{ name: 'other', url: 'oss://cold/other', options: ossOptions, archive: { after: '60d', storageClass: 'Archive' } }],
    }),
  );
  await writeFile(
    join(dir, 'local.config.json'),
    JSON.stringify({ ...config, destinations: [{ ...config.destinations[0], archive: { after: '30d', storageClass: 'Archive' } }] }),
  );
}, 60_000);

afterAll(async () => {
  await oss?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The rules of an OSS lifecycle document. */
const rulesOf = (xml: string) =>
  [...xml.matchAll(/<Rule>([\s\S]*?)<\/Rule>/g)].map(([, rule]) => {
    const field = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(rule!)?.[1];
    return { id: field('ID'), prefix: field('Prefix'), status: field('Status'), days: field('Days'), storageClass: field('StorageClass') };
  });

describe('stowage destinations lifecycle (OSS test server)', () => {
  it('print: the OSS XML for the archive policy on stdout (4w → 28 days, one rule per type folder), the caveat on stderr', async () => {
    const printed = await run('destinations', 'lifecycle', 'print');
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout.startsWith('<?xml')).toBe(true);
    expect(rulesOf(printed.stdout)).toEqual([
      { id: 'stowage-wms/full/', prefix: 'wms/full/', status: 'Enabled', days: '28', storageClass: 'ColdArchive' },
      { id: 'stowage-wms/incremental/', prefix: 'wms/incremental/', status: 'Enabled', days: '28', storageClass: 'ColdArchive' },
    ]);
    expect(printed.stderr).toContain('# cold (oss://cold/wms/)');
    expect(printed.stderr).toMatch(/warning: a bucket lifecycle rule ages each object on its own: it cannot keep a chain together/);
    expect(
      oss.requests.filter((r) => r.operation?.includes('Lifecycle')),
      'print sends nothing',
    ).toEqual([]);

    const json = JSON.parse((await run('destinations', 'lifecycle', 'print', '--json')).stdout) as {
      result: { destinations: Array<{ destination: string; format: string; text: string }> };
    };
    expect(json.result.destinations.map((d) => [d.destination, d.format, rulesOf(d.text).length])).toEqual([['cold', 'xml', 2]]);
  });

  it('apply: needs --yes, writes the rules beside a foreign one, reads them back; a second apply changes nothing', async () => {
    await admin.putBucketLifecycle('cold', [{ id: 'logs-expire', prefix: 'logs/', status: 'Enabled', expiration: { days: 30 } }]);
    const unconfirmed = await run('destinations', 'lifecycle', 'apply');
    expect([unconfirmed.code, unconfirmed.stderr]).toEqual([2, expect.stringContaining('add --yes')]);

    const applied = await run('destinations', 'lifecycle', 'apply', '--yes');
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('cold (oss://cold/wms/): full/ → ColdArchive after 28 d; incremental/ → ColdArchive after 28 d');
    expect(applied.stdout).toContain('read back: the bucket has exactly these Stowage rules');
    const first = (await admin.getBucketLifecycle('cold')).rules;
    expect(first.map((r) => [r.id, r.prefix, r.transition?.days, r.transition?.storageClass])).toEqual([
      ['logs-expire', 'logs/', undefined, undefined],
      ['stowage-wms/full/', 'wms/full/', '28', 'ColdArchive'],
      ['stowage-wms/incremental/', 'wms/incremental/', '28', 'ColdArchive'],
    ]);

    const again = await run('destinations', 'lifecycle', 'apply', '--destination', 'cold', '--yes', '--json');
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({
      ok: true,
      command: 'destinations lifecycle apply',
      result: { destinations: [{ destination: 'cold', confirmed: true }] },
    });
    expect((await admin.getBucketLifecycle('cold')).rules).toEqual(first);
  });

  it("apply after a policy was deleted removes that destination's Stowage rules only; the foreign rule stays byte-identical", async () => {
    const foreignXml = async () => /<Rule>(?:(?!<\/Rule>)[\s\S])*<ID>logs-expire<\/ID>[\s\S]*?<\/Rule>/.exec(await rawLifecycle())?.[0];
    await run('destinations', 'lifecycle', 'apply', '--yes');
    const foreign = await foreignXml();
    expect(foreign).toContain('<Expiration>');
    expect((await admin.getBucketLifecycle('cold')).rules.map((r) => r.id)).toEqual(['logs-expire', 'stowage-wms/full/', 'stowage-wms/incremental/']);

    const removed = await run('destinations', 'lifecycle', 'apply', '--yes', '--config', 'deleted.config.json');
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toContain("cold (oss://cold/wms/): no archive policy: Stowage's rules removed");
    expect((await admin.getBucketLifecycle('cold')).rules.map((r) => r.id)).toEqual(['logs-expire']);
    expect(await foreignXml()).toBe(foreign);

    const writes = () => oss.requests.filter((r) => r.operation === 'PutBucketLifecycle' || r.operation === 'DeleteBucketLifecycle').length;
    const before = writes();
    const again = await run('destinations', 'lifecycle', 'apply', '--yes', '--config', 'deleted.config.json');
    expect([again.code, again.stdout.trim()]).toEqual([0, 'no destination has an archive policy or Stowage rules left over: nothing to apply']);
    expect(writes(), 'nothing left over: nothing written').toBe(before);
  });

  it("two applies at once for two prefixes of one bucket both land: the bucket's lifecycle lock serialises the read-modify-writes", async () => {
    // The first write is held 15 s: without the lock, the other writer reads the configuration meanwhile and
    // writes first, and the held write, built on what its writer read before, would then drop the other's rules.
    oss.faults.add({ fault: { kind: 'delay', ms: 15_000 }, operations: ['PutBucketLifecycle'], times: 1 });
    const [mine, other] = await Promise.all([
      run('destinations', 'lifecycle', 'apply', '--yes', '--wait', '60s'),
      run('destinations', 'lifecycle', 'apply', '--yes', '--wait', '60s', '--config', 'other.config.json'),
    ]);
    expect([mine.code, other.code], `${mine.stderr}\n${other.stderr}`).toEqual([0, 0]);
    expect(oss.faults.pending).toBe(0);
    const rules = (await admin.getBucketLifecycle('cold')).rules;
    expect(rules.map((r) => [r.id, r.transition?.days, r.transition?.storageClass]).sort()).toEqual([
      ['logs-expire', undefined, undefined],
      ['stowage-other/full/', '60', 'Archive'],
      ['stowage-wms/full/', '28', 'ColdArchive'],
      ['stowage-wms/incremental/', '28', 'ColdArchive'],
    ]);
    expect(
      oss.keys('cold').filter((key) => key.startsWith('locks/')),
      'the lock is released',
    ).toEqual([]);
    expect(oss.requests.some((r) => r.bucket === 'cold' && r.key === 'locks/lifecycle.lock' && r.method === 'PUT')).toBe(true);
  });

  it("a live holder of the bucket's lifecycle lock fails an apply that does not wait, naming it and what to run; nothing is written", async () => {
    const holder = { id: 'other-apply', host: hostname(), pid: process.pid, operation: 'lifecycle', startedAt: new Date().toISOString() };
    await admin.put('locks/lifecycle.lock', Buffer.from(JSON.stringify({ ...holder, expiresAt: new Date(Date.now() + 600_000).toISOString() })));
    try {
      const before = oss.requests.filter((r) => r.operation === 'PutBucketLifecycle').length;
      const held = await run('destinations', 'lifecycle', 'apply', '--yes');
      expect(held.code).toBe(1);
      expect(held.stderr).toMatch(/holds the lock on destination cold \(bucket lifecycle\).*run `stowage destinations lifecycle apply --wait 11m`/);
      expect(oss.requests.filter((r) => r.operation === 'PutBucketLifecycle').length).toBe(before);
    } finally {
      await admin.delete('locks/lifecycle.lock');
    }
  });

  it('a local folder or a destination without an archive policy: exit 2, saying why', async () => {
    const local = await run('destinations', 'lifecycle', 'print', '--config', 'local.config.json');
    expect(local.code).toBe(2);
    expect(local.stderr).toMatch(/bucket lifecycle rules are a cloud-bucket feature \(S3, OSS\); 'here' \(.+\) has none: use stowage archive run/);
    const named = await run('destinations', 'lifecycle', 'apply', '--destination', 'here', '--yes');
    expect([named.code, named.stderr]).toEqual([2, expect.stringContaining("destination 'here' has no archive policy")]);
    const warm = await run('destinations', 'lifecycle', 'print', '--destination', 'warm');
    expect([warm.code, warm.stderr]).toEqual([2, expect.stringContaining("destination 'warm' has no archive policy")]);
    expect((await run('destinations', 'lifecycle', 'print', '--destination', 'nope')).code).toBe(2);
  });
});
