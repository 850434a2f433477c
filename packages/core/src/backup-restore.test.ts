import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { simulateWarehouseActivity, tableRowCounts } from '@stowage/fixtures';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import type { ProgressEvent } from './destination.js';
import type { StorageAdapter } from '@stowage/storage';
import { forwarding } from '@stowage/storage-testkit';
import { listBackups } from './catalog.js';
import { parseManifest, serializeManifest } from './manifest.js';
import { restore, verifyRestored } from './restore.js';
import { makeWorkspace, type Workspace, sha256File } from './test/harness.js';
import { validate } from './validate.js';
import { verify } from './verify.js';

const mode = async (path: string) => (await stat(path)).mode & 0o777;

let ws: Workspace;
afterEach(async () => ws?.dispose());

describe('full and hot backups', () => {
  it("store the seed's names, folders 700, files 600, and a manifest that pins the snapshot", async () => {
    ws = await makeWorkspace();
    const result = await backup(ws.engine, { type: 'full' });
    const id = result.manifest.id;
    expect(id).toMatch(/^full_backup_\d{8}_\d{6}$/);
    expect(result.outcome).toBe('ok');
    expect((await readdir(join(ws.backups, 'full'))).sort()).toEqual([`${id}.manifest.json`, `${id}.pagehash`, `${id}.sqlite3`]);
    for (const dir of [ws.backups, join(ws.backups, 'full'), join(ws.backups, 'logs')]) expect(await mode(dir)).toBe(0o700);
    for (const file of [`${id}.sqlite3`, `${id}.pagehash`, `${id}.manifest.json`]) expect(await mode(join(ws.backups, 'full', file))).toBe(0o600);

    const stored = join(ws.backups, 'full', `${id}.sqlite3`);
    const manifest = parseManifest(await readFile(join(ws.backups, 'full', `${id}.manifest.json`), 'utf8'), 'test');
    expect(manifest.source.snapshotSha256).toBe(await sha256File(stored));
    expect(manifest.source.snapshotSha256).toBe(await sha256File(ws.database)); // nobody wrote: identical bytes
    expect(manifest.source.tables).toEqual(tableRowCounts(ws.database));
    expect(manifest.source.journalMode).toBe('delete');
    expect((await stat(join(ws.backups, 'full', `${id}.pagehash`))).size).toBe(manifest.source.pageCount * 16);
    expect(manifest.replicas.local?.verifiedBy).toBeDefined();
    // The real sqlite3 program accepts the stored file as it is.
    expect(execFileSync('sqlite3', [stored, 'PRAGMA integrity_check;'], { encoding: 'utf8' }).trim()).toBe('ok');
    const log = await readFile(join(ws.backups, 'logs', 'backup.log'), 'utf8');
    expect(log).toMatch(new RegExp(`backup-full ${id} ok [\\d.]+s \\d+B committed=local`));
  });

  it('reports upload progress from 0 to the bytes stored, though the local destination copies the staged files without reading them', async () => {
    const events: ProgressEvent[] = [];
    ws = await makeWorkspace({ engine: { onProgress: (event) => events.push(event) } });
    const result = await backup(ws.engine, { type: 'full' });
    const upload = events.filter((event) => event.phase === 'upload');
    expect(upload[0]).toEqual({ phase: 'upload', done: 0, total: result.bytes });
    expect(upload.at(-1)).toEqual({ phase: 'upload', done: result.bytes, total: result.bytes });
  });

  it('stages no copy of a rollback-journal database: only the encoded artifacts are staged while they are stored', async () => {
    const stagedDuringPut: string[][] = [];
    const watch = (adapter: StorageAdapter) =>
      forwarding(adapter, {
        async put(key, body, options) {
          if (key.startsWith('full/')) stagedDuringPut.push((await readdir(ws.engine.stagingDir)).sort());
          return adapter.put(key, body, options);
        },
      });
    ws = await makeWorkspace({ config: { compression: { algorithm: 'zstd', level: 3 } }, engine: { wrappers: [watch] } });
    await backup(ws.engine, { type: 'full' });
    expect(stagedDuringPut.length).toBeGreaterThanOrEqual(2);
    for (const names of stagedDuringPut) expect(names.map((name) => name.replace(/^backup-[^.]+/, ''))).toEqual(['.pagehash', '.sqlite3.zst']);
    expect(await readdir(ws.engine.stagingDir)).toEqual([]);
  });

  it('gives two backups taken in the same second different names', async () => {
    const fixed = new Date(2024, 0, 1, 2, 0, 0);
    ws = await makeWorkspace({ engine: { now: () => fixed } });
    const first = await backup(ws.engine, { type: 'full' });
    const second = await backup(ws.engine, { type: 'full' });
    expect(first.manifest.id).toBe('full_backup_20240101_020000');
    expect(second.manifest.id).toBe('full_backup_20240101_020000_1');
    expect((await listBackups(ws.engine)).map((e) => e.manifest.id)).toEqual([first.manifest.id, second.manifest.id]);
  });

  it('records the reason of a hot backup in hot/', async () => {
    ws = await makeWorkspace();
    const result = await backup(ws.engine, { type: 'hot', reason: 'before stock-take import' });
    expect(result.manifest.id).toMatch(/^hot_backup_/);
    expect(result.manifest.reason).toBe('before stock-take import');
    expect(existsSync(join(ws.backups, 'hot', `${result.manifest.id}.sqlite3`))).toBe(true);
  });
});

describe('verify and validate', () => {
  it('pass on a good backup and name the damaged artifact after a flipped byte or a truncation', async () => {
    ws = await makeWorkspace();
    const { manifest } = await backup(ws.engine, { type: 'full' });
    expect((await verify(ws.engine, { backup: manifest.id }))[0]?.ok).toBe(true);
    const validation = await validate(ws.engine, manifest.id);
    expect(validation).toMatchObject({ ok: true, schemaMatches: true, rowCountMismatches: {} });

    const stored = join(ws.backups, 'full', `${manifest.id}.sqlite3`);
    const bytes = await readFile(stored);
    bytes[bytes.length >> 1]! ^= 0x01;
    await writeFile(stored, bytes);
    const flipped = (await verify(ws.engine, { all: true }))[0]!;
    expect(flipped.ok).toBe(false);
    expect(flipped.artifacts.find((a) => !a.ok)).toMatchObject({ key: `full/${manifest.id}.sqlite3`, destination: 'local' });
    await expect(validate(ws.engine, manifest.id)).rejects.toMatchObject({ code: 'stowage.backup.corrupt' });

    await writeFile(stored, bytes.subarray(0, 4096));
    const truncated = (await verify(ws.engine, { backup: manifest.id }))[0]!;
    expect(truncated.artifacts.find((a) => !a.ok)?.problem).toMatch(/4096 bytes stored/);
  });
});

describe('which checks a restore runs', () => {
  const lastLogLine = async () => (await readFile(join(ws.engine.logDir, 'restore.log'), 'utf8')).trim().split('\n').at(-1);

  it('full checks until they passed once on the snapshot (a restore or validate records it); then none over the whole file, unless asked', async () => {
    ws = await makeWorkspace();
    const full = (await backup(ws.engine, { type: 'full' })).manifest;
    simulateWarehouseActivity(ws.database, { seed: 5, operations: 20 });
    const { manifest } = await backup(ws.engine, { type: 'incremental' });
    const manifestPath = join(ws.backups, 'incremental', `${manifest.id}.manifest.json`);
    const recordedIn = async (path: string) => parseManifest(await readFile(path, 'utf8'), 'm').integrityChecked;

    // quick_check passing records nothing: it is not the full checks.
    const quick = await restore(ws.engine, { backup: manifest.id, testMode: true, check: 'quick' });
    expect(quick.checks).toEqual({ kind: 'quick', integrity: ['ok'] });
    expect(quick.recorded).toBeUndefined();
    expect(await recordedIn(manifestPath)).toBeUndefined();

    const first = await restore(ws.engine, { backup: manifest.id, testMode: true });
    expect(first.checks).toMatchObject({ kind: 'full', integrity: ['ok'], foreignKeyViolations: 0 });
    expect(first.recorded).toEqual(['local']);
    const recorded = await recordedIn(manifestPath);
    expect(recorded).toMatchObject({ by: 'restore' });
    expect(await lastLogLine()).toContain('integrity-recorded=local');

    const verified = await restore(ws.engine, { backup: manifest.id, testMode: true });
    expect(verified.checks).toEqual({
      kind: 'verified',
      integrity: ['ok'],
      basis: { snapshotSha256: manifest.source.snapshotSha256, at: recorded!.at, by: 'restore' },
    });
    expect(verified.recorded).toBeUndefined();
    expect(await sha256File(verified.target!)).toBe(manifest.source.snapshotSha256);
    expect(await lastLogLine()).toContain('check=verified');

    const again = await restore(ws.engine, { backup: manifest.id, testMode: true, check: 'full' });
    expect(again.checks).toMatchObject({ kind: 'full', integrity: ['ok'], foreignKeyViolations: 0 });
    expect(again.recorded).toBeUndefined();
    expect(await recordedIn(manifestPath)).toEqual(recorded);

    // validate records it too; the full backup's restores then inherit validate's pass.
    expect(await validate(ws.engine, full.id)).toMatchObject({ ok: true, recorded: ['local'] });
    const byValidate = await restore(ws.engine, { backup: full.id, testMode: true });
    expect(byValidate.checks).toMatchObject({ kind: 'verified', integrity: ['ok'], basis: { snapshotSha256: full.source.snapshotSha256, by: 'validate' } });
  });

  it('a verified restore still reads the schema back: one that does not hash as the manifest says fails the restore, target untouched', async () => {
    ws = await makeWorkspace();
    const { manifest } = await backup(ws.engine, { type: 'full' });
    expect(await validate(ws.engine, manifest.id)).toMatchObject({ ok: true });
    const manifestPath = join(ws.backups, 'full', `${manifest.id}.manifest.json`);
    const stored = parseManifest(await readFile(manifestPath, 'utf8'), 'm');
    await writeFile(manifestPath, serializeManifest({ ...stored, source: { ...stored.source, schemaHash: '0'.repeat(64) } }));
    const target = join(ws.dir, 'restored.sqlite3');
    await expect(restore(ws.engine, { backup: manifest.id, target, confirm: async () => true })).rejects.toMatchObject({
      code: 'stowage.restore.check_failed',
      message: expect.stringContaining(`schema hash ${manifest.source.schemaHash} is not the backup's ${'0'.repeat(64)}`),
    });
    expect(existsSync(target)).toBe(false);
  });
});

describe('restore', () => {
  it('in test mode restores into a scratch folder and leaves the live database alone', async () => {
    ws = await makeWorkspace();
    const { manifest } = await backup(ws.engine, { type: 'full' });
    simulateWarehouseActivity(ws.database, { seed: 3 });
    const liveBefore = await sha256File(ws.database);
    const result = await restore(ws.engine, { backup: 'latest', testMode: true });
    expect(result.target!).toBe(join(ws.config.stateDir, 'test-restore', 'db.sqlite3'));
    expect(await sha256File(result.target!)).toBe(manifest.source.snapshotSha256);
    expect(await sha256File(ws.database)).toBe(liveBefore);
    expect(await verifyRestored(ws.engine, { testMode: true })).toMatchObject({ ok: true, unchangedSinceRestore: true, backupId: manifest.id });
  });

  it('moves the live database and its stale journal/WAL aside, then puts the backup in place', async () => {
    const fixed = new Date(2024, 5, 1, 12, 30, 0);
    ws = await makeWorkspace({ engine: { now: () => fixed } });
    const { manifest } = await backup(ws.engine, { type: 'full' });
    simulateWarehouseActivity(ws.database, { seed: 4 });
    const damaged = await sha256File(ws.database);
    await writeFile(`${ws.database}-wal`, 'stale wal that must never be replayed');
    await writeFile(`${ws.database}-journal`, 'stale journal');
    const result = await restore(ws.engine, { backup: manifest.id });
    expect(await sha256File(ws.database)).toBe(manifest.source.snapshotSha256);
    expect(existsSync(`${ws.database}-wal`)).toBe(false);
    expect(existsSync(`${ws.database}-journal`)).toBe(false);
    const aside = `${ws.database}.damaged_20240601_123000`;
    // The sidecars SQLite still had travel with the old file under the same stamp; SQLite itself
    // discarded the unreadable ones while the switch held the database locked.
    expect(result.movedAside![0]).toBe(aside);
    expect(result.movedAside!.every((path) => /\.damaged_20240601_123000(-journal|-wal|-shm)?$/.test(path))).toBe(true);
    expect(await sha256File(aside)).toBe(damaged);
    expect(execFileSync('sqlite3', [aside, 'PRAGMA integrity_check'], { encoding: 'utf8' }).trim()).toBe('ok');
    expect(tableRowCounts(ws.database)).toEqual(manifest.source.tables);
    const check = await verifyRestored(ws.engine);
    expect(check).toMatchObject({ ok: true, unchangedSinceRestore: true });
    simulateWarehouseActivity(ws.database, { seed: 5 });
    expect(await verifyRestored(ws.engine)).toMatchObject({ ok: true, unchangedSinceRestore: false });
    expect(await readFile(join(ws.engine.logDir, 'restore.log'), 'utf8')).toMatch(new RegExp(`restore ${manifest.id} ok`));
  });

  it('accepts the seed-style file path of a backup', async () => {
    ws = await makeWorkspace();
    const { manifest } = await backup(ws.engine, { type: 'full' });
    const result = await restore(ws.engine, { backup: `backups/full/${manifest.id}.sqlite3`, testMode: true });
    expect(result.manifest.id).toBe(manifest.id);
  });

  it('leaves the live database byte-for-byte as it was when the backup is damaged', async () => {
    ws = await makeWorkspace();
    const { manifest } = await backup(ws.engine, { type: 'full' });
    simulateWarehouseActivity(ws.database, { seed: 6 });
    const live = await sha256File(ws.database);
    const stored = join(ws.backups, 'full', `${manifest.id}.sqlite3`);
    const bytes = await readFile(stored);
    bytes[200_000 % bytes.length]! ^= 0xff;
    await writeFile(stored, bytes);
    await expect(restore(ws.engine, { backup: manifest.id })).rejects.toMatchObject({
      code: 'stowage.backup.corrupt',
      message: expect.stringContaining(`full/${manifest.id}.sqlite3`),
    });
    expect(await sha256File(ws.database)).toBe(live);
    expect((await readdir(ws.dir)).filter((f) => f.includes('stowage-restore'))).toEqual([]);
    expect(await readFile(join(ws.engine.logDir, 'restore.log'), 'utf8')).toMatch(/restore full_backup_\S+ failed/);
  });
});
