/*
 * Owners of temporary files. Every temp file or folder Stowage creates carries an owner token in
 * its name — host, pid and the pid's start time (plus a random tag) — so the next run of any
 * command can tell the leftovers of a dead process (same host, and the pid no longer runs or now
 * belongs to a later process) from the work of a live one, and remove only the former.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { systemErrorCode } from '@stowage/errors';

/** Who created a temp file, as read back from its name. */
export interface TempOwner {
  /** The host name, reduced to `[A-Za-z0-9.]` (a `-` ends the prefix before a token, so a host has none). */
  host: string;
  pid: number;
  /** Start time of the pid in clock ticks since boot (Linux `/proc/<pid>/stat`); 0 where unknown. */
  startTicks: number;
}

/** This host's name as it appears in owner tokens. */
export const TOKEN_HOST = hostname().replace(/[^A-Za-z0-9.]/g, '.') || 'host';

/** A token follows a `-` (`stowage-tmp-`, `backup-`, …) and ends the name or comes before a `.suffix`. */
const TOKEN = /-([A-Za-z0-9.]+)_(\d+)_(\d+)_[0-9a-f]{8}(?=$|\.)/;

/** Start time of `pid` in clock ticks since boot, or 0 off Linux or when it cannot be read. */
export function pidStartTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state is field 3, starttime field 22.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]) || 0;
  } catch {
    return 0;
  }
}

/** True unless the kernel says no process has this pid. */
export function pidRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return systemErrorCode(error) !== 'ESRCH';
  }
}

let bootIdMemo: string | null | undefined;

/** The Linux boot id (changes at every boot), or undefined elsewhere. */
export function bootId(): string | undefined {
  if (bootIdMemo === undefined) {
    try {
      bootIdMemo = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
    } catch {
      bootIdMemo = null;
    }
  }
  return bootIdMemo ?? undefined;
}

const OWN_START = pidStartTicks(process.pid);

/** A fresh token naming this process as the owner: `<host>_<pid>_<start ticks>_<random>`. */
export function ownerToken(): string {
  return `${TOKEN_HOST}_${process.pid}_${OWN_START}_${randomBytes(4).toString('hex')}`;
}

/** The owner named in a temp file's name, or undefined when the name carries no token. */
export function ownerOf(name: string): TempOwner | undefined {
  const match = TOKEN.exec(name);
  return match ? { host: match[1]!, pid: Number(match[2]), startTicks: Number(match[3]) } : undefined;
}

/**
 * Why the owner of a temp file is gone (its pid no longer runs on this host, or runs a later
 * process), or undefined when it may still be at work — including every owner on another host.
 * `startTicks` of 0 (unknown) falls back to the pid alone.
 */
export function ownerGone(owner: Pick<TempOwner, 'host' | 'pid'> & { startTicks?: number }): string | undefined {
  if (owner.host !== TOKEN_HOST) return undefined;
  if (owner.pid === process.pid && (owner.startTicks ?? 0) === OWN_START) return undefined;
  if (!pidRuns(owner.pid)) return `pid ${owner.pid} no longer runs on host ${owner.host}`;
  const now = pidStartTicks(owner.pid);
  if (owner.startTicks && now && now !== owner.startTicks) return `pid ${owner.pid} on host ${owner.host} is a later process now`;
  return undefined;
}

/** True when `name` carries an owner token whose owner is gone. */
export function isDeadOwnersTemp(name: string): boolean {
  const owner = ownerOf(name);
  return owner !== undefined && ownerGone(owner) !== undefined;
}
