import { readFileSync } from 'node:fs';

/*
 * How quiet the machine was while a section ran. The load average cannot say: the bench's own
 * commands load both cores. Instead the machine's busy CPU time (/proc/stat) is compared with
 * that of the bench and the commands it ran and waited for (/proc/self/stat, children included);
 * what is left was used by other processes. Steal is the time the hypervisor gave this VM's
 * virtual CPUs to someone else: on a VM it is the other source of noise.
 */

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on Linux, whatever the kernel's HZ). */
const TICKS_PER_SECOND = 100;

/** CPU times so far, in clock ticks, and when they were read. */
export interface CpuReading {
  at: number;
  machineBusy: number;
  steal: number;
  /** This process and its waited-for children. */
  own: number;
}

/** What another process or the hypervisor took while a section ran, in cores on average. */
export interface CpuShare {
  otherCores: number;
  stealCores: number;
}

/** The machine's and this process tree's CPU times now; undefined where /proc is not Linux's. */
export function readCpu(): CpuReading | undefined {
  try {
    // cpu user nice system idle iowait irq softirq steal …
    const machine = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = machine;
    // The fields after the command name (which may hold spaces) in parentheses; utime is field 14.
    const self = readFileSync('/proc/self/stat', 'utf8');
    const fields = self
      .slice(self.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    const [utime, stime, cutime, cstime] = fields.slice(11, 15);
    const values = [user, nice, system, irq, softirq, steal, utime, stime, cutime, cstime];
    if (values.some((v) => v === undefined || !Number.isFinite(v))) return undefined;
    return { at: performance.now(), machineBusy: user! + nice! + system! + irq! + softirq!, steal: steal!, own: utime! + stime! + cutime! + cstime! };
  } catch {
    return undefined;
  }
}

/**
 * The CPU other processes and the hypervisor took between two readings. Children still running
 * at `to` (a test server not yet stopped) count as other processes until they are waited for.
 */
export function cpuShare(from: CpuReading, to: CpuReading): CpuShare {
  const seconds = (to.at - from.at) / 1000;
  const cores = (ticks: number) => Math.max(0, ticks / TICKS_PER_SECOND / seconds);
  return { otherCores: cores(to.machineBusy - from.machineBusy - (to.own - from.own)), stealCores: cores(to.steal - from.steal) };
}
