import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startSmtp } from '@stowage/alerts/testing';
import { withChaos } from '@stowage/storage-testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { cleanup } from './cleanup.js';
import { drill } from './drill.js';
import { openEngine } from './engine.js';
import { alertOnStatus, status } from './status.js';
import { makeWorkspace, type Workspace } from './test/harness.js';
import { verify } from './verify.js';

let smtp: Awaited<ReturnType<typeof startSmtp>>;
let ws: Workspace;
const clock = { now: new Date(2024, 5, 1, 2, 0, 0) };
const subjects = () => smtp.mails.map((mail) => mail.subject ?? '');

beforeAll(async () => {
  smtp = await startSmtp({ onAuth: (_auth, _session, callback) => callback(null, { user: 'stowage' }) });
  ws = await makeWorkspace({
    engine: { now: () => clock.now },
    config: {
      destinations: [
        { name: 'local', url: 'backups' },
        { name: 'offsite', url: 'offsite' },
      ],
      quorum: 1,
      alerts: {
        channels: [
          { type: 'email', host: '127.0.0.1', port: smtp.port, secure: 'none', from: 'stowage@wms.example.com', to: ['ops@example.com'], timeoutMs: 2000 },
        ],
        repeatMinutes: 60,
      },
    },
  });
});
afterAll(async () => {
  await ws?.dispose();
  await smtp?.close();
});

describe('alerts by email, end to end', () => {
  it('mails each trigger once, with what, where, since and the command, and a recovery when it clears', async () => {
    // Backup failed (every destination full), then degraded (one down), then fine.
    const broken = await openEngine(ws.config, { retry: false, now: () => clock.now, wrappers: [(a) => withChaos(a, { diskFull: true })] });
    await expect(backup(broken, { type: 'full' })).rejects.toMatchObject({ code: 'stowage.backup.replication_failed' });
    const degraded = await openEngine(ws.config, {
      retry: false,
      now: () => clock.now,
      wrappers: [(a, name) => (name === 'offsite' ? withChaos(a, { diskFull: true }) : a)],
    });
    await backup(degraded, { type: 'full' });
    for (let day = 2; day <= 5; day++) {
      clock.now = new Date(2024, 5, day, 2, 0, 0);
      await backup(ws.engine, { type: 'full' });
    }
    // A table loses nearly all its rows: a size anomaly.
    const db = new Database(ws.database);
    db.exec('DELETE FROM stocklist WHERE id % 20 != 0');
    db.close();
    clock.now = new Date(2024, 5, 6, 2, 0, 0);
    const anomalous = await backup(ws.engine, { type: 'full' });
    expect(anomalous.manifest.anomalies?.some((a) => a.metric.includes('stocklist'))).toBe(true);

    // A damaged replica found by verify, and a drill that fails on it.
    const stored = join(ws.dir, 'offsite', 'full', `${anomalous.manifest.id}.sqlite3`);
    const bytes = await readFile(stored);
    bytes[4096]! ^= 1;
    await writeFile(stored, bytes);
    await verify(ws.engine, { all: true });
    await drill(ws.engine, { destination: 'offsite' });
    // A cleanup that cannot delete, and a drill slower than an RTO target of 0 minutes.
    const stuck = await openEngine(
      { ...ws.config, retention: { full: '1h', incremental: '1h', hot: '1h' } },
      { retry: false, now: () => clock.now, wrappers: [(a) => withChaos(a, { delete: { fail: 'always' } })] },
    );
    clock.now = new Date(2024, 5, 6, 3, 0, 0);
    expect((await cleanup(stuck, {})).failures.length).toBeGreaterThan(0);
    const impatient = await openEngine({ ...ws.config, targets: { rpo: '1h', rto: '0m' } }, { retry: false, now: () => clock.now });
    expect((await drill(impatient, { destination: 'local' })).ok).toBe(true);
    // RPO breached: two hours without a backup. Reading the status only reads; a watcher raises it.
    clock.now = new Date(2024, 5, 6, 4, 0, 0);
    const breached = await status(ws.engine);
    expect(breached.healthy).toBe(false);
    expect(subjects().some((subject) => /RPO/.test(subject))).toBe(false);
    await alertOnStatus(ws.engine, breached);

    const got = subjects();
    for (const expected of [
      /full backup failed/i,
      /is missing at offsite/i,
      /looks unusual: table:stocklist/i,
      /verify/i,
      /drill .* failed/i,
      /cleanup/i,
      /RTO|recovery time|took/i,
      /RPO/i,
    ]) {
      expect(
        got.some((subject) => expected.test(subject)),
        `${expected} in ${JSON.stringify(got)}`,
      ).toBe(true);
    }
    const failedMail = smtp.mails.find((mail) => /full backup failed/i.test(mail.subject ?? ''))!;
    expect(failedMail.text).toMatch(/Where: .*stowage\.config\.json/);
    expect(failedMail.text).toMatch(/Since: /);
    expect(failedMail.text).toMatch(/Look further: stowage /);
    // The failure cleared with the next good full backup: one recovery mail.
    expect(got.filter((subject) => /CRITICAL\] full backup failed/.test(subject))).toHaveLength(1);
    expect(got.filter((subject) => /RESOLVED\] full backup failed/.test(subject))).toHaveLength(1);
  });
});
