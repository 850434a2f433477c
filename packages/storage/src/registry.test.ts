import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { StorageAdapter } from './contract.js';
import { StorageErrorCode } from './errors.js';
import { StorageRegistry, parseDestinationUrl, type AdapterFactory } from './registry.js';

interface Opened {
  url: URL;
  options: unknown;
  baseDir: string;
}

/** A factory that records what it was asked to create and returns a dummy adapter. */
function recordingFactory<Options>(scheme: string, optionsSchema: z.ZodType<Options>) {
  const opened: Opened[] = [];
  const factory: AdapterFactory<Options> = {
    scheme,
    optionsSchema,
    create(url, options, { baseDir }) {
      opened.push({ url, options, baseDir });
      return { description: `${scheme} adapter` } as StorageAdapter;
    },
  };
  return { factory, opened };
}

const baseDir = resolve('/srv/app');

describe('StorageRegistry', () => {
  it('rejects an unknown scheme with unknown_scheme, naming the known ones', async () => {
    const registry = new StorageRegistry().register(recordingFactory('file', z.object({})).factory);
    await expect(registry.open({ url: 'ftp://host/backups' }, { baseDir })).rejects.toMatchObject({
      code: StorageErrorCode.UnknownScheme,
      message: expect.stringMatching(/'ftp:'.*known: file:$/),
    });
  });

  it('reports every invalid option as `options.path: message`', async () => {
    const schema = z.object({ bucket: z.string(), retries: z.number().int().min(0), tls: z.object({ ca: z.string() }) });
    const registry = new StorageRegistry().register(recordingFactory('s3', schema).factory);
    const opening = registry.open({ url: 's3://bucket/prefix', options: { retries: -1, tls: { ca: 7 } } }, { baseDir });
    await expect(opening).rejects.toMatchObject({
      code: StorageErrorCode.InvalidConfig,
      message: expect.stringMatching(/^options\.bucket: [^;]+; options\.retries: [^;]+; options\.tls\.ca: [^;]+$/),
    });
  });

  it('hands the factory the parsed options, defaults included, and the base folder', async () => {
    const { factory, opened } = recordingFactory('mem', z.object({ fsync: z.boolean().default(true) }));
    const adapter = await new StorageRegistry().register(factory).open({ url: 'MEM://x' }, { baseDir });
    expect(adapter.description).toBe('mem adapter');
    expect(opened).toEqual([{ url: new URL('mem://x'), options: { fsync: true }, baseDir }]);
  });

  it('opens a plain relative path as a file: URL resolved against baseDir', async () => {
    const { factory, opened } = recordingFactory('file', z.object({}));
    await new StorageRegistry().register(factory).open({ url: './backups/db' }, { baseDir });
    expect(opened[0]?.url.href).toBe(pathToFileURL(resolve(baseDir, 'backups/db')).href);
  });

  it('lists registered schemes sorted', () => {
    const registry = new StorageRegistry().register(recordingFactory('s3', z.object({})).factory).register(recordingFactory('file', z.object({})).factory);
    expect(registry.schemes()).toEqual(['file', 's3']);
  });
});

describe('lazily registered schemes', () => {
  it('load their factory on first use only, and once', async () => {
    let loads = 0;
    const { factory, opened } = recordingFactory('s3', z.object({}));
    const registry = new StorageRegistry().registerLazy('s3', async () => {
      loads++;
      return factory as AdapterFactory<never>;
    });
    expect(registry.schemes()).toEqual(['s3']);
    expect(loads).toBe(0);
    await registry.open({ url: 's3://bucket/a' }, { baseDir });
    await registry.open({ url: 's3://bucket/b' }, { baseDir });
    expect(loads).toBe(1);
    expect(opened).toHaveLength(2);
  });
});

describe('parseDestinationUrl', () => {
  it('treats plain paths as local folders', () => {
    expect(parseDestinationUrl('backups', baseDir).href).toBe(pathToFileURL(resolve(baseDir, 'backups')).href);
    expect(parseDestinationUrl('/var/backups/stowage', baseDir).href).toBe(pathToFileURL(resolve('/var/backups/stowage')).href);
  });

  it('keeps URLs with a scheme as they are', () => {
    expect(parseDestinationUrl('s3://bucket/a/b', baseDir).href).toBe('s3://bucket/a/b');
    expect(parseDestinationUrl('file:///var/backups', baseDir).href).toBe('file:///var/backups');
  });

  it('rejects a malformed URL with invalid_config', () => {
    expect(() => parseDestinationUrl('https://[::1', baseDir)).toThrow(expect.objectContaining({ code: StorageErrorCode.InvalidConfig }));
  });
});

describe('a scheme has one factory', () => {
  it('refuses a second factory for a registered scheme (eager or lazy, any case) with duplicate_scheme', () => {
    const registry = new StorageRegistry().register(recordingFactory('s3', z.object({})).factory);
    const again = recordingFactory('S3', z.object({})).factory;
    expect(() => registry.register(again)).toThrow(
      expect.objectContaining({ code: StorageErrorCode.DuplicateScheme, message: expect.stringContaining("'s3:'") }),
    );
    expect(() => registry.registerLazy('s3', async () => again as AdapterFactory<never>)).toThrow(
      expect.objectContaining({ code: StorageErrorCode.DuplicateScheme }),
    );
    const lazy = new StorageRegistry().registerLazy('oss', async () => again as AdapterFactory<never>);
    expect(() => lazy.register(recordingFactory('oss', z.object({})).factory)).toThrow(expect.objectContaining({ code: StorageErrorCode.DuplicateScheme }));
  });

  it('registering the very same factory again is harmless', async () => {
    const { factory, opened } = recordingFactory('mem', z.object({}));
    const registry = new StorageRegistry().register(factory).register(factory);
    await registry.open({ url: 'mem://x' }, { baseDir });
    expect(opened).toHaveLength(1);
  });

  it('probe runs the factory probe with validated options, and is undefined without one', async () => {
    const { factory } = recordingFactory('plain', z.object({}));
    const probing: AdapterFactory<{ n: number }> = {
      ...recordingFactory('probing', z.object({ n: z.number().default(3) })).factory,
      probe: async (url, options) => ({ summary: `${url.host} n=${options.n}` }),
    };
    const registry = new StorageRegistry().register(factory).register(probing);
    expect(await registry.probe({ url: 'plain://x' }, { baseDir })).toBeUndefined();
    expect(await registry.probe({ url: 'probing://host' }, { baseDir })).toEqual({ summary: 'host n=3' });
    await expect(registry.probe({ url: 'probing://host', options: { n: 'x' } }, { baseDir })).rejects.toMatchObject({ code: StorageErrorCode.InvalidConfig });
  });
});
