import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generatePassphrase, writeKeyFile } from '@stowage/crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { AUDIT_FILE, auditCopyKey, verifyAudit, verifyAuditTrail, type AuditRecord } from './audit.js';
import { backup } from './backup.js';
import { openEngine } from './engine.js';
import { restore } from './restore.js';
import { makeWorkspace, type Workspace } from './test/harness.js';
import { verify } from './verify.js';

let ws: Workspace;
afterEach(async () => ws?.dispose());

describe('the audit log', () => {
  it('chains every operation, holds no secret, and finds an edited, deleted, reordered or truncated record', async () => {
    ws = await makeWorkspace({ config: { encryption: { mode: 'passphrase', passphraseFile: 'k' } } });
    const passphrase = generatePassphrase();
    await writeKeyFile(join(ws.dir, 'k'), `${passphrase}\n`);
    const { manifest } = await backup(ws.engine, { type: 'full' });
    await verify(ws.engine, { all: true });
    await restore(ws.engine, { testMode: true });
    const logDir = join(ws.backups, 'logs');
    const path = join(logDir, AUDIT_FILE);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const text = await readFile(path, 'utf8');
    expect(text).not.toContain(passphrase);
    const lines = text.trim().split('\n');
    const records = lines.map((line) => JSON.parse(line) as AuditRecord);
    expect(records.map((r) => [r.seq, r.operation, r.outcome])).toEqual([
      [1, 'key-use', 'encrypt'],
      [2, 'backup-full', 'ok'],
      [3, 'verify', 'ok'],
      [4, 'key-use', 'decrypt'],
      [5, 'restore-test', 'ok'],
    ]);
    expect(records[1]).toMatchObject({ backupId: manifest.id, pid: process.pid, host: expect.any(String), user: expect.any(String) });
    expect(await verifyAudit(logDir)).toEqual({ ok: true, records: 5, problems: [] });
    // A copy went to the destination with the backup, its own record included.
    const copies = await readdir(join(ws.backups, 'audit'));
    expect(copies).toHaveLength(1);
    expect(await readFile(join(ws.backups, 'audit', copies[0]!), 'utf8')).toBe(`${lines[0]}\n${lines[1]}\n`);

    const tamper = async (next: string[], raw?: string) => {
      await writeFile(path, raw ?? `${next.join('\n')}\n`);
      const result = await verifyAudit(logDir);
      await writeFile(path, text);
      return result;
    };
    const edited = (await tamper([lines[0]!, lines[1]!.replace('"outcome":"ok"', '"outcome":"failed"'), ...lines.slice(2)])).problems;
    expect(edited[0]).toMatch(/^line 2: record 2 was edited/);
    expect((await tamper([lines[0]!, ...lines.slice(2)])).problems[0]).toMatch(/^line 2: record 3 where 2 was expected/);
    expect((await tamper([lines[0]!, lines[2]!, lines[1]!, ...lines.slice(3)])).ok).toBe(false);
    expect((await tamper([], text.slice(0, -20))).problems[0]).toMatch(/line 5: the last record is cut short/);
  });
});

describe('config changes', () => {
  it('are noted in the audit log once per change, by hash only', async () => {
    ws = await makeWorkspace();
    const logDir = join(ws.backups, 'logs');
    const operations = async () =>
      (await readFile(join(logDir, AUDIT_FILE), 'utf8').catch(() => ''))
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((line) => (JSON.parse(line) as AuditRecord).outcome);
    await writeFile(ws.config.configPath, '{"source":{"database":"db.sqlite3"},"destinations":[{"name":"local","url":"backups"}]}');
    await (await openEngine(ws.config)).close();
    await (await openEngine(ws.config)).close();
    expect(await operations()).toEqual(['first-seen']);
    await writeFile(ws.config.configPath, '{"source":{"database":"db.sqlite3"},"destinations":[{"name":"local","url":"backups"}],"quorum":1}');
    await (await openEngine(ws.config)).close();
    expect(await operations()).toEqual(['first-seen', 'changed']);
    expect((await verifyAudit(logDir)).ok).toBe(true);
  });

  it('warn when the audit log cannot be written, instead of dropping the record silently', async () => {
    ws = await makeWorkspace();
    // A folder where the log file should be: every append fails (EISDIR), even for root.
    await mkdir(join(ws.backups, 'logs', AUDIT_FILE), { recursive: true });
    const warnings: string[] = [];
    await writeFile(ws.config.configPath, '{"source":{"database":"db.sqlite3"},"destinations":[{"name":"local","url":"backups"}],"quorum":1}');
    const engine = await openEngine(ws.config, { onWarning: (message) => warnings.push(message) });
    expect(warnings).toEqual([expect.stringMatching(/^could not record the config change in the audit log: .*EISDIR/)]);
    // The backup's own record fails it; the record of that failure is a warning too.
    await expect(backup(engine, { type: 'full' })).rejects.toThrow(/EISDIR/);
    expect(warnings[1]).toMatch(/^could not record the failed backup in backup.log and the audit log: .*EISDIR/);
    await engine.close();
  });
});

describe('the audit log anchored off-host', () => {
  it('finds a removed tail, a rewritten log, and a damaged, truncated or missing copy at a destination', async () => {
    ws = await makeWorkspace({
      config: {
        destinations: [
          { name: 'local', url: 'backups' },
          { name: 'remote', url: 'remote' },
        ],
      },
    });
    const unanchored = (await backup(ws.engine, { type: 'full' })).manifest;
    expect(unanchored.audit).toBeUndefined(); // the log was empty
    await verify(ws.engine, { all: true });
    const first = (await backup(ws.engine, { type: 'full' })).manifest;
    const second = (await backup(ws.engine, { type: 'full' })).manifest;
    const path = join(ws.backups, 'logs', AUDIT_FILE);
    const log = await readFile(path, 'utf8');
    const lines = log.trim().split('\n');
    // Each manifest anchors the log's head at commit: the record before the backup's own.
    const seqOf = (id: string) => lines.map((l) => JSON.parse(l) as AuditRecord).find((r) => r.backupId === id && r.operation === 'backup-full')!.seq;
    expect(first.audit).toEqual({ seq: seqOf(first.id) - 1, hash: (JSON.parse(lines[seqOf(first.id) - 2]!) as AuditRecord).hash });
    expect(second.audit?.seq).toBe(seqOf(second.id) - 1);
    expect(await verifyAuditTrail(ws.engine)).toEqual({ ok: true, records: lines.length, problems: [], anchors: { manifests: 2, copies: 2 } });

    const copyPath = join(ws.dir, 'remote', auditCopyKey());
    const copy = await readFile(copyPath);
    const problemsAfter = async (change: () => Promise<void>) => {
      await change();
      const result = await verifyAuditTrail(ws.engine);
      await writeFile(path, log);
      await writeFile(copyPath, copy);
      expect(result.ok).toBe(!result.problems.length);
      return result.problems;
    };

    // The local log's tail removed at a line boundary: its own chain is intact, the anchors are not.
    const cut = lines.slice(0, second.audit!.seq - 1);
    expect(await verifyAudit(join(ws.backups, 'logs'))).toMatchObject({ ok: true });
    const truncated = await problemsAfter(() => writeFile(path, `${cut.join('\n')}\n`));
    expect(truncated).toContain(
      `the log ends at record ${cut.length}, but backup ${second.id} recorded record ${second.audit!.seq} as its head at commit: the records after ${cut.length} were removed`,
    );
    expect(truncated).toContain(
      `the local log ends at record ${cut.length}, but the copy at remote holds records up to ${lines.length}: the local log lost its tail`,
    );

    // The whole log rewritten with fresh hashes (a chain that checks out on its own).
    const rewritten = await problemsAfter(() =>
      writeFile(
        path,
        rechain(lines, (r) => (r.seq === 2 ? { ...r, outcome: 'failed' } : r)),
      ),
    );
    expect(rewritten).toContain(`record ${first.audit!.seq} differs from the one backup ${first.id} recorded at commit: the log was rewritten`);
    expect(rewritten).toContain('record 2 differs between the local log and the copy at remote');

    const flipped = Buffer.from(copy);
    flipped[Math.floor(copy.length / 2)]! ^= 0x01;
    expect((await problemsAfter(() => writeFile(copyPath, flipped)))[0]).toMatch(/^the audit copy at remote is damaged: line \d+: /);
    expect(await problemsAfter(() => writeFile(copyPath, copy.subarray(0, copy.length - 10)))).toContain(
      `the audit copy at remote is damaged: line ${lines.length}: the last record is cut short (the file was truncated)`,
    );
    const copyLines = copy.toString('utf8').trim().split('\n');
    expect(await problemsAfter(() => writeFile(copyPath, `${copyLines.slice(0, second.audit!.seq - 1).join('\n')}\n`))).toEqual([
      `the audit copy at remote ends at record ${second.audit!.seq - 1}, but backup ${second.id} there recorded record ${second.audit!.seq}: the copy was truncated or replaced by an older one`,
    ]);
    expect(await problemsAfter(() => rm(copyPath))).toEqual([`the audit copy ${auditCopyKey()} is missing at remote, which holds 3 backup(s) of this host`]);
  });
});

/** The log's records changed by `edit`, each re-hashed and re-linked as a careful forger would. */
function rechain(lines: readonly string[], edit: (record: AuditRecord) => AuditRecord): string {
  let prev = '0'.repeat(64);
  return lines
    .map((line) => {
      const { hash: _old, ...body } = { ...edit(JSON.parse(line) as AuditRecord), prev };
      const hash = createHash('sha256').update(JSON.stringify(body)).digest('hex');
      prev = hash;
      return `${JSON.stringify({ ...body, hash })}\n`;
    })
    .join('');
}
