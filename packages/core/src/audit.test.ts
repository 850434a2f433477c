import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generatePassphrase, writeKeyFile } from '@stowage/crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { AUDIT_FILE, verifyAudit, type AuditRecord } from './audit.js';
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
    const operations = async () => (await readFile(join(logDir, AUDIT_FILE), 'utf8').catch(() => '')).trim().split('\n').filter(Boolean).map((line) => (JSON.parse(line) as AuditRecord).outcome);
    await writeFile(ws.config.configPath, '{"source":{"database":"db.sqlite3"},"destinations":[{"name":"local","url":"backups"}]}');
    await (await openEngine(ws.config)).close();
    await (await openEngine(ws.config)).close();
    expect(await operations()).toEqual(['first-seen']);
    await writeFile(ws.config.configPath, '{"source":{"database":"db.sqlite3"},"destinations":[{"name":"local","url":"backups"}],"quorum":1}');
    await (await openEngine(ws.config)).close();
    expect(await operations()).toEqual(['first-seen', 'changed']);
    expect((await verifyAudit(logDir)).ok).toBe(true);
  });
});
