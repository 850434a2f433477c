import { execFileSync, spawn } from 'node:child_process';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { sha256Hex } from '@stowage/storage';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { checkWriterInvariants, simulateWarehouseActivity, startWriterProcess } from '@stowage/fixtures';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { listBackups } from './catalog.js';
import { parseManifest, serializeManifest } from './manifest.js';
import { restore } from './restore.js';
import { makeWorkspace, type Workspace, sha256File } from './test/harness.js';
import { validate } from './validate.js';

let ws: Workspace;
afterEach(async () => ws?.dispose());

describe('page-delta incrementals', () => {
  it('store only changed pages and restore every point of a chain byte-exactly, after growth and shrinkage', async () => {
    ws = await makeWorkspace();
    const points: Array<{ id: string; sha: string }> = [];
    const take = async (type: 'full' | 'incremental') => {
      const { manifest, bytes } = await backup(ws.engine, { type });
      expect(manifest.source.snapshotSha256).toBe(await sha256File(ws.database));
      points.push({ id: manifest.id, sha: manifest.source.snapshotSha256 });
      return { manifest, bytes };
    };
    await take('full');
    for (let seed = 1; seed <= 3; seed++) {
      simulateWarehouseActivity(ws.database, { seed, operations: 30 });
      const { manifest, bytes } = await take('incremental');
      expect(manifest).toMatchObject({ type: 'incremental', parent: points.at(-2)!.id, chainLength: seed });
      expect(manifest.delta!.changedPages).toBeGreaterThan(0);
      expect(manifest.delta!.changedPages).toBeLessThan(manifest.source.pageCount / 2);
      expect(manifest.artifacts[0]!.key).toBe(`incremental/${manifest.id}.delta`);
      expect(manifest.artifacts[0]!.size).toBe(96 + manifest.delta!.changedPages * (manifest.source.pageSize + 4));
      // Only the carried pages' hashes are stored with an incremental, not the whole list.
      expect(manifest.artifacts.find((a) => a.role === 'page-hashes')!.size).toBe(16 + manifest.delta!.changedPages * 20);
      expect(bytes).toBeLessThan(manifest.source.size / 2);
    }
    // Grow by a lot, then shrink below the original size.
    const db = new Database(ws.database);
    db.exec('CREATE TABLE bulk(x BLOB)');
    db.prepare('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) INSERT INTO bulk SELECT randomblob(3000) FROM n').run();
    const grown = await take('incremental');
    expect(grown.manifest.source.pageCount).toBeGreaterThan(grown.manifest.delta!.basePageCount);
    db.exec('DROP TABLE bulk; DELETE FROM asndetail; DELETE FROM dndetail; VACUUM');
    db.close();
    const shrunk = await take('incremental');
    expect(shrunk.manifest.source.pageCount).toBeLessThan(shrunk.manifest.delta!.basePageCount);

    for (const point of points) {
      const target = join(ws.dir, `restored-${point.id}.sqlite3`);
      const result = await restore(ws.engine, { backup: point.id, target });
      expect(await sha256File(target)).toBe(point.sha);
      expect(result.chain[0]).toBe(points[0]!.id);
      expect(result.chain.at(-1)).toBe(point.id);
    }
    expect((await validate(ws.engine, 'latest')).ok).toBe(true);
  });

  it('take a full instead, saying why, when there is no full yet or the chain is at maxChainLength', async () => {
    ws = await makeWorkspace({ config: { maxChainLength: 2 } });
    const first = await backup(ws.engine, { type: 'incremental' });
    expect(first.manifest).toMatchObject({ type: 'full', fullBecause: 'there is no full backup yet' });
    expect(ws.warnings.join('\n')).toMatch(/taking a full backup instead/);
    await backup(ws.engine, { type: 'incremental' });
    const second = await backup(ws.engine, { type: 'incremental' });
    expect(second.manifest.chainLength).toBe(2);
    const third = await backup(ws.engine, { type: 'incremental' });
    expect(third.manifest).toMatchObject({ type: 'full', fullBecause: expect.stringMatching(/maxChainLength \(2\)/) });
  });

  it('take a full instead when the page hashes of the parent are of another algorithm (sha256-128, before xxh3-128)', async () => {
    ws = await makeWorkspace();
    const full = await backup(ws.engine, { type: 'full' });
    const manifestPath = join(ws.backups, 'full', `${full.manifest.id}.manifest.json`);
    const old = parseManifest(await readFile(manifestPath, 'utf8'), manifestPath);
    await writeFile(manifestPath, serializeManifest({ ...old, source: { ...old.source, pageHashAlgorithm: 'sha256-128' } }));
    simulateWarehouseActivity(ws.database, { seed: 4, operations: 10 });
    const next = await backup(ws.engine, { type: 'incremental' });
    expect(next.manifest).toMatchObject({ type: 'full', parent: null, fullBecause: expect.stringMatching(/sha256-128.*xxh3-128/) });
    expect(next.manifest.source.pageHashAlgorithm).toBe('xxh3-128');
    const inc = await backup(ws.engine, { type: 'incremental' });
    expect(inc.manifest).toMatchObject({ type: 'incremental', parent: next.manifest.id });
  });

  it('need no local state: with the state folder gone, the next incremental and every restore still work', async () => {
    ws = await makeWorkspace();
    await backup(ws.engine, { type: 'full' });
    simulateWarehouseActivity(ws.database, { seed: 8, operations: 20 });
    await backup(ws.engine, { type: 'incremental' });
    await rm(ws.config.stateDir, { recursive: true, force: true });
    simulateWarehouseActivity(ws.database, { seed: 9, operations: 20 });
    const inc = await backup(ws.engine, { type: 'incremental' });
    expect(inc.manifest.chainLength).toBe(2);
    await rm(ws.config.stateDir, { recursive: true, force: true });
    const restored = await restore(ws.engine, { backup: 'latest', target: join(ws.dir, 'r.sqlite3') });
    expect(await sha256File(restored.target!)).toBe(inc.manifest.source.snapshotSha256);
  });

  it('work under a live writer in WAL mode', async () => {
    ws = await makeWorkspace({ journalMode: 'wal' });
    const writer = await startWriterProcess(ws.database, { intervalMs: 2 });
    try {
      await backup(ws.engine, { type: 'full' });
      while ((await writer.commits()) < 100) await new Promise((r) => setTimeout(r, 20));
      const inc = await backup(ws.engine, { type: 'incremental' });
      expect(inc.manifest.type).toBe('incremental');
      const restored = await restore(ws.engine, { backup: inc.manifest.id, target: join(ws.dir, 'r.sqlite3') });
      expect(checkWriterInvariants(restored.target!)).toMatchObject({ ok: true });
    } finally {
      expect((await writer.stop()).errors).toBe(0);
    }
  });

  it('fail a restore naming a missing link, and detect a delta applied to the wrong base; the live database is untouched', async () => {
    ws = await makeWorkspace();
    const full = await backup(ws.engine, { type: 'full' });
    simulateWarehouseActivity(ws.database, { seed: 2, operations: 20 });
    const inc1 = await backup(ws.engine, { type: 'incremental' });
    simulateWarehouseActivity(ws.database, { seed: 3, operations: 20 });
    const inc2 = await backup(ws.engine, { type: 'incremental' });
    const live = await sha256File(ws.database);

    // A delta pointed at the wrong base (its manifest edited to name the full as parent).
    const manifestPath = join(ws.backups, 'incremental', `${inc2.manifest.id}.manifest.json`);
    const original = await readFile(manifestPath, 'utf8');
    await writeFile(manifestPath, serializeManifest({ ...parseManifest(original, manifestPath), parent: full.manifest.id })); // consistent, checksum and all
    await expect(restore(ws.engine, { backup: inc2.manifest.id })).rejects.toMatchObject({
      code: 'stowage.backup.chain_broken',
      message: expect.stringContaining(inc2.manifest.id),
    });
    await writeFile(manifestPath, original);

    // The middle link deleted by hand.
    await rm(join(ws.backups, 'incremental', `${inc1.manifest.id}.manifest.json`));
    await expect(restore(ws.engine, { backup: inc2.manifest.id })).rejects.toMatchObject({
      code: 'stowage.backup.chain_broken',
      message: expect.stringContaining(inc1.manifest.id),
    });
    expect(await sha256File(ws.database)).toBe(live);
    // The next incremental is never built on a chain that cannot be restored: a full is taken, saying why.
    const next = await backup(ws.engine, { type: 'incremental' });
    expect(next.manifest).toMatchObject({ type: 'full', parent: null, fullBecause: expect.stringContaining(inc1.manifest.id) });
  });

  it('keep their order when the clock goes backwards, and restore --at picks by time', async () => {
    let now = new Date(2024, 0, 1, 3, 0, 0);
    ws = await makeWorkspace({ engine: { now: () => now } });
    const full = await backup(ws.engine, { type: 'full' });
    now = new Date(2024, 0, 1, 2, 0, 0); // clock jumped back an hour
    simulateWarehouseActivity(ws.database, { seed: 4, operations: 20 });
    const inc = await backup(ws.engine, { type: 'incremental' });
    expect(inc.manifest.parent).toBe(full.manifest.id);
    expect((await listBackups(ws.engine)).map((e) => e.manifest.id)).toEqual([full.manifest.id, inc.manifest.id]);
    const latest = await restore(ws.engine, { testMode: true });
    expect(latest.manifest.id).toBe(inc.manifest.id);
    const at = await restore(ws.engine, { at: new Date(2024, 0, 1, 2, 30, 0), testMode: true });
    expect(at.manifest.id).toBe(inc.manifest.id);
    await expect(restore(ws.engine, { at: new Date(2023, 0, 1), testMode: true })).rejects.toMatchObject({ code: 'stowage.backup.not_found' });
  });

  it('stay correct after a backup process is killed with SIGKILL mid-run', async () => {
    ws = await makeWorkspace();
    await backup(ws.engine, { type: 'full' });
    const repo = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
    await writeFile(ws.config.configPath, JSON.stringify({ source: { database: 'db.sqlite3' }, destinations: [{ name: 'local', url: 'backups' }] }));
    for (const delayMs of [150, 400]) {
      simulateWarehouseActivity(ws.database, { seed: delayMs, operations: 20 });
      // `node --import tsx` (not the tsx bin, which would leave its node child running after the kill).
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', join(repo, 'apps/cli/src/bin/stowage.ts'), 'backup', '--type', 'incremental', '--config', ws.config.configPath],
        { cwd: repo, stdio: 'ignore' },
      );
      await new Promise((r) => setTimeout(r, delayMs));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    simulateWarehouseActivity(ws.database, { seed: 77, operations: 20 });
    const inc = await backup(ws.engine, { type: 'incremental' });
    const restored = await restore(ws.engine, { backup: inc.manifest.id, target: join(ws.dir, 'r.sqlite3') });
    expect(await sha256File(restored.target!)).toBe(await sha256File(ws.database));
    expect((await stat(restored.target!)).size).toBe(inc.manifest.source.size);
  });
});

describe('page-hash lists of earlier versions', () => {
  it('a full whose list is compressed (`.pagehash.zst`, as earlier versions stored it) still parents an incremental, and the chain restores', async () => {
    ws = await makeWorkspace({ config: { compression: { algorithm: 'zstd', level: 3 } } });
    const { manifest: full } = await backup(ws.engine, { type: 'full' });
    const list = full.artifacts.find((a) => a.role === 'page-hashes')!;
    expect(list).toMatchObject({ key: `full/${full.id}.pagehash`, encoding: [] });
    // Rewritten at the destination as an earlier version wrote it, compressed by the zstd program.
    const raw = join(ws.backups, list.key);
    execFileSync('zstd', ['-q', '-3', raw, '-o', `${raw}.zst`]);
    const compressed = await readFile(`${raw}.zst`);
    await rm(raw);
    const old = {
      ...list,
      key: `${list.key}.zst`,
      encoding: ['zstd'],
      size: compressed.length,
      sha256: sha256Hex(compressed),
      decodedSize: list.size,
      decodedSha256: list.sha256,
    };
    const rewritten = { ...full, artifacts: full.artifacts.map((a) => (a.role === 'page-hashes' ? old : a)) };
    await writeFile(join(ws.backups, 'full', `${full.id}.manifest.json`), serializeManifest(rewritten));
    await rm(join(ws.config.stateDir, 'cache'), { recursive: true, force: true }); // the list is read from the destination

    simulateWarehouseActivity(ws.database, { seed: 1, operations: 30 });
    const { manifest: inc } = await backup(ws.engine, { type: 'incremental' });
    expect(inc).toMatchObject({ type: 'incremental', parent: full.id });
    expect(inc.delta!.changedPages).toBeLessThan(inc.source.pageCount / 2);
    const target = join(ws.dir, 'restored.sqlite3');
    await restore(ws.engine, { backup: inc.id, target });
    expect(await sha256File(target)).toBe(await sha256File(ws.database));
  });
});
