import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startS3rver, type S3rverProcess } from '@stowage/storage-s3/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';

// Two processes race for one S3 destination's lock on a server with conditional writes: the
// If-None-Match write alone decides (no settle wait, no read-back), once per round.
const CHILD = fileURLToPath(new URL('./test/lock-race-child.ts', import.meta.url));
const ROUNDS = 3;
const GAP_MS = 3000;
const ENV = { RACE_S3_KEY: 'S3RVER', RACE_S3_SECRET: 'S3RVER', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
let server: S3rverProcess;

beforeAll(async () => {
  server = await startS3rver();
  await server.createBucket('backups');
});

afterAll(async () => {
  await server?.stop();
});

interface RoundResult {
  round: number;
  won: boolean;
  exclusive?: boolean;
  code?: string;
  ms: number;
}

function racer(): { child: ChildProcessWithoutNullStreams; lines: string[]; ready: Promise<void>; done: Promise<number | null> } {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', CHILD, JSON.stringify({ endpoint: server.endpoint, url: 's3://backups/race', rounds: ROUNDS, gapMs: GAP_MS })],
    {
      env: { ...process.env, ...ENV },
    },
  );
  const lines: string[] = [];
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => (line === 'ready' ? resolve() : lines.push(line)));
    child.once('exit', (code) => reject(new Error(`racer exited (${code}) before it was ready: ${stderr}`)));
  });
  const done = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { child, lines, ready, done };
}

it('two processes racing for a destination lock: the conditional write alone lets exactly one win each round', { timeout: 60_000 }, async () => {
  const racers = [racer(), racer()];
  await Promise.all(racers.map((r) => r.ready));
  const startAt = Date.now() + 500;
  for (const { child } of racers) child.stdin.end(`${startAt}\n`);
  expect(await Promise.all(racers.map((r) => r.done))).toEqual([0, 0]);

  const results = racers.map((r) => r.lines.map((line) => JSON.parse(line) as RoundResult));
  for (let round = 0; round < ROUNDS; round++) {
    const outcomes = results.map((list) => list.find((r) => r.round === round)!);
    expect(outcomes.filter((o) => o.won)).toHaveLength(1);
    const winner = outcomes.find((o) => o.won)!;
    const loser = outcomes.find((o) => !o.won)!;
    expect(winner.exclusive).toBe(true);
    expect(loser.code).toBe('stowage.lock.held');
    expect(Math.max(winner.ms, loser.ms)).toBeLessThan(GAP_MS); // no settle wait (it would take 10 minutes)
  }
  // Each round both wrote the lock object with If-None-Match: one write went through, the other got 412.
  const lockPuts = (await server.requests()).filter((r) => r.method === 'PUT' && r.path === '/backups/race/locks/repository.lock');
  expect(lockPuts.map((r) => r.status).sort()).toEqual([...Array(ROUNDS).fill(200), ...Array(ROUNDS).fill(412)]);
});
