/*
 * One of two processes racing for an S3 destination's lock (lock-race.integration.test.ts).
 * argv[2]: JSON { endpoint, url, rounds, gapMs }. Prints `ready`, then reads the start time (ms since
 * the epoch) from stdin; in each round it tries to take the lock at the same instant as the other
 * process, and prints one JSON line: { round, won, exclusive?, code?, ms }. Its lock puts wait for a
 * common instant, so that both processes have found the lock free before either writes it: only
 * the conditional write can then settle who has it.
 */
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { StorageRegistry, type StorageAdapter } from '@stowage/storage';
import { s3StorageFactory } from '@stowage/storage-s3';
import { acquireDestinationLock, DESTINATION_LOCK_KEY } from '../lock.js';

const { endpoint, url, rounds, gapMs } = JSON.parse(process.argv[2]!) as { endpoint: string; url: string; rounds: number; gapMs: number };
const options = {
  endpoint,
  forcePathStyle: true,
  accessKeyIdEnv: 'RACE_S3_KEY',
  secretAccessKeyEnv: 'RACE_S3_SECRET',
  checksumMode: 'crc64nvme',
  conditionalWrites: true,
};
const adapter = await new StorageRegistry().register(s3StorageFactory).open({ url, options }, { baseDir: process.cwd() });
const sleepUntil = (time: number) => sleep(Math.max(0, time - Date.now()));

let putAt = 0;
const racing: StorageAdapter = {
  description: adapter.description,
  capabilities: adapter.capabilities,
  put: async (key, body, putOptions) => {
    if (key === DESTINATION_LOCK_KEY) await sleepUntil(putAt);
    return adapter.put(key, body, putOptions);
  },
  get: (key, getOptions) => adapter.get(key, getOptions),
  stat: (key, statOptions) => adapter.stat(key, statOptions),
  list: (prefix, listOptions) => adapter.list(prefix, listOptions),
  delete: (keys, deleteOptions) => adapter.delete(keys, deleteOptions),
};

process.stdout.write('ready\n');
const startAt = Number(await new Promise<string>((resolve) => createInterface({ input: process.stdin }).once('line', resolve)));
for (let round = 0; round < rounds; round++) {
  const roundAt = startAt + round * gapMs;
  putAt = roundAt + gapMs / 4;
  await sleepUntil(roundAt);
  const started = performance.now();
  try {
    // A settle wait (the path without conditional writes) would take 10 minutes: the test would time out.
    const lock = await acquireDestinationLock({ name: 's3', adapter: racing }, { operation: 'race' }, { settleMs: 600_000 });
    process.stdout.write(`${JSON.stringify({ round, won: true, exclusive: lock.exclusive, ms: performance.now() - started })}\n`);
    await sleepUntil(roundAt + (gapMs * 3) / 4);
    await lock.release();
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ round, won: false, code: (error as { code?: string }).code, ms: performance.now() - started })}\n`);
  }
}
await adapter.close?.();
