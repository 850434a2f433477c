import { randomBytes } from 'node:crypto';
import { bufferBody, digestStream, type EndpointProbe } from '@stowage/storage';
import type { Engine } from './engine.js';

export interface DestinationProbe {
  destination: string;
  description: string;
  ok: boolean;
  /** What the adapter declares. */
  capabilities: { serverChecksums: string[]; conditionalPut: boolean; rangeReads: boolean; maxParallelism: number };
  /** A small object written, read back, checked and deleted. */
  roundTrip: { ok: boolean; ms: number; serverChecksums: string[]; problem?: string };
  /**
   * What the endpoint really supports, and the options to set, for destinations whose adapter
   * factory has a probe (S3); `probeProblem` says why it failed when it did.
   */
  endpoint?: EndpointProbe;
  probeProblem?: string;
}

/**
 * Probes every destination (`stowage destinations probe`): a write–read–delete round trip
 * through the configured adapter, and the adapter factory's own probe where it has one (S3: the
 * checksum, conditional-write and listing support), so that the config says what the endpoint
 * does instead of assuming it.
 */
export async function probeDestinations(engine: Engine): Promise<DestinationProbe[]> {
  return Promise.all(
    engine.destinations.map(async (destination) => {
      const spec = engine.config.destinations.find((d) => d.name === destination.name)!;
      const { adapter } = destination;
      const key = `probe/${randomBytes(6).toString('hex')}`;
      const body = bufferBody(randomBytes(4096));
      const started = performance.now();
      let roundTrip: DestinationProbe['roundTrip'];
      try {
        await adapter.put(key, body);
        const info = await adapter.stat(key);
        const back = await digestStream(await adapter.get(key));
        if (back.sha256 !== body.sha256 || info?.size !== body.size) throw new Error('the object read back differs from the one written');
        roundTrip = { ok: true, ms: Math.round(performance.now() - started), serverChecksums: Object.keys(info.checksums) };
      } catch (error) {
        roundTrip = { ok: false, ms: Math.round(performance.now() - started), serverChecksums: [], problem: (error as Error).message };
      } finally {
        await adapter.delete([key]).catch(() => undefined);
      }
      const endpoint = await engine.registry.probe(spec, { baseDir: engine.config.baseDir }).then(
        (found) => ({ found }),
        (error: unknown) => ({ problem: (error as Error).message }),
      );
      return {
        destination: destination.name,
        description: adapter.description,
        ok: roundTrip.ok,
        capabilities: { ...adapter.capabilities, serverChecksums: [...adapter.capabilities.serverChecksums] },
        roundTrip,
        ...('found' in endpoint && endpoint.found ? { endpoint: endpoint.found } : {}),
        ...('problem' in endpoint ? { probeProblem: endpoint.problem } : {}),
      };
    }),
  );
}
