import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** One timed run of one command. */
export interface Sample {
  seconds: number;
  /** User + system CPU seconds: less sensitive than wall time to other work on the machine. */
  cpuSeconds: number;
  rssMiB: number;
}

/** Several runs of one command: median wall and CPU time, and the highest peak RSS seen. */
export interface Stats {
  seconds: number;
  cpuSeconds: number;
  rssMiB: number;
  samples: Sample[];
}

/** A command line to time; `before` and `after` run untimed around every run (clean outputs, measure what it stored). */
export interface Command {
  label: string;
  argv: () => string[];
  before?: () => Promise<void>;
  after?: () => Promise<void>;
}

/** `sh -c script` with positional arguments, so paths never need quoting. */
export function sh(script: string, ...args: string[]): string[] {
  return ['sh', '-c', script, 'sh', ...args];
}

/** `argv` followed by `sync`, so a reference pays for making its output durable as Stowage does with fsync. */
export function synced(argv: string[]): string[] {
  return sh('"$@" && sync', ...argv);
}

const found = new Map<string, Promise<boolean>>();
/** Forgets what `installed` found (after installing programs). */
export function forgetInstalled(): void {
  found.clear();
}
/** Whether a program is on the PATH (asked once per program). */
export function installed(program: string): Promise<boolean> {
  if (!found.has(program))
    found.set(
      program,
      run(sh('command -v "$1"', program), '/').then((r) => r.code === 0),
    );
  return found.get(program)!;
}

/** Runs a command to completion; returns its exit code and (the tail of) its stdout+stderr. */
export function run(argv: string[], cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    const child = spawn(file!, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-8000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), output }));
  });
}

/** Runs a command and throws (with its output) unless it exits 0. */
export async function runOk(argv: string[], cwd: string): Promise<string> {
  const { code, output } = await run(argv, cwd);
  if (code !== 0) throw new Error(`\`${argv.join(' ')}\` exited ${code}:\n${output}`);
  return output;
}

/**
 * Times one run under GNU time (`%e` wall seconds, `%M` peak RSS in KiB, `%U`+`%S` CPU seconds, of
 * the command and its waited-for children). Everything dirty is flushed first, untimed, so that no run pays for an
 * earlier run's writeback.
 */
export async function timeOnce(command: Command, cwd: string, scratch: string): Promise<Sample> {
  await command.before?.();
  await runOk(['sync'], cwd);
  const timeFile = join(scratch, 'gnu-time.out');
  await runOk(['/usr/bin/time', '-f', '%e %M %U %S', '-o', timeFile, ...command.argv()], cwd);
  // GNU time may prepend a "Command exited…" line; the figures are on the last line.
  const last = (await readFile(timeFile, 'utf8')).trim().split('\n').at(-1) ?? '';
  const figures = last.split(/\s+/).map(Number);
  if (figures.length !== 4 || !figures.every(Number.isFinite)) throw new Error(`cannot parse GNU time output '${last}' for ${command.label}`);
  const [seconds, kib, user, system] = figures as [number, number, number, number];
  await command.after?.();
  return { seconds, cpuSeconds: user + system, rssMiB: kib / 1024 };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function summarize(samples: Sample[]): Stats {
  return {
    seconds: median(samples.map((s) => s.seconds)),
    cpuSeconds: median(samples.map((s) => s.cpuSeconds)),
    rssMiB: Math.max(...samples.map((s) => s.rssMiB)),
    samples,
  };
}
