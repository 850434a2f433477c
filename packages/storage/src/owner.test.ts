import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { isDeadOwnersTemp, ownerGone, ownerOf, ownerToken, pidStartTicks, TOKEN_HOST } from './owner.js';

/** The pid of a process that has exited. */
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid!;

describe('owner tokens of temp files', () => {
  it('name host, pid and start time, and are read back from any temp name that carries one', () => {
    const token = ownerToken();
    const owner = { host: TOKEN_HOST, pid: process.pid, startTicks: pidStartTicks(process.pid) };
    for (const name of [
      `.db.sqlite3.stowage-restore-${token}`,
      `.x.manifest.json.stowage-tmp-${token}`,
      `backup-${token}.files.tar.zst`,
      `.stowage-restore-${token}`,
    ]) {
      expect(ownerOf(name)).toEqual(owner);
    }
    expect(ownerOf('.stowage-pre-restore-20240101_120000')).toBeUndefined();
    expect(ownerOf('backup-0a1b2c3d4e5f.sqlite3')).toBeUndefined();
    expect(owner.startTicks).toBeGreaterThan(0);
  });

  it('judge an owner gone when its pid is dead or now runs a later process, never a live one or another host', () => {
    expect(ownerGone({ host: TOKEN_HOST, pid: process.pid, startTicks: pidStartTicks(process.pid) })).toBeUndefined();
    const dead = deadPid();
    expect(ownerGone({ host: TOKEN_HOST, pid: dead, startTicks: 0 })).toMatch(new RegExp(`pid ${dead} no longer runs`));
    // The parent runs, but not the process that started at tick 1: the pid was reused.
    expect(ownerGone({ host: TOKEN_HOST, pid: process.ppid, startTicks: 1 })).toMatch(/is a later process now/);
    expect(ownerGone({ host: `not.${TOKEN_HOST}`, pid: dead, startTicks: 0 })).toBeUndefined();
    expect(isDeadOwnersTemp(`.a.stowage-tmp-${TOKEN_HOST}_${dead}_5_0badc0de`)).toBe(true);
    expect(isDeadOwnersTemp(`.a.stowage-tmp-${ownerToken()}`)).toBe(false);
  });
});
