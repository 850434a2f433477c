import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { resumableGet } from './resume.js';

/** A body that sends `bytes` in 1 KiB chunks and then breaks with `code` (or ends, without one). */
function body(bytes: Buffer, code?: string): Readable {
  async function* chunks() {
    for (let at = 0; at < bytes.length; at += 1024) yield bytes.subarray(at, at + 1024);
    if (code) throw Object.assign(new Error(`broke: ${code}`), { code });
  }
  return Readable.from(chunks(), { objectMode: false });
}

const mapped = (error: unknown) => Object.assign(new Error('mapped'), { code: 'mapped', cause: error });

describe('resumableGet', () => {
  const data = randomBytes(10_000);

  it('continues from the byte after the cut, byte-exact, reporting each resume', async () => {
    const asked: number[] = [];
    const retries: { attempt: number; key: string | undefined; resumeAt: number | undefined }[] = [];
    const out = resumableGet(body(data.subarray(0, 3072), 'ECONNRESET'), {
      key: 'k',
      length: data.length,
      openAt: async (received) => {
        asked.push(received);
        return received < 6144 ? body(data.subarray(received, 6144), 'ERR_STREAM_PREMATURE_CLOSE') : body(data.subarray(received));
      },
      onRetry: ({ attempt, key, resumeAt }) => retries.push({ attempt, key, resumeAt }),
      toError: mapped,
    });
    expect((await buffer(out)).equals(data)).toBe(true);
    expect(asked).toEqual([3072, 6144]);
    expect(retries).toEqual([
      { attempt: 1, key: 'k', resumeAt: 3072 },
      { attempt: 2, key: 'k', resumeAt: 6144 },
    ]);
  });

  it('treats a body that ends short of the announced length as cut', async () => {
    const out = resumableGet(body(data.subarray(0, 2048)), { key: 'k', length: data.length, openAt: async (at) => body(data.subarray(at)), toError: mapped });
    expect((await buffer(out)).equals(data)).toBe(true);
  });

  it('fails with the mapped cut after maxResumes resumes', async () => {
    let opened = 0;
    const out = resumableGet(body(data.subarray(0, 1024), 'ECONNRESET'), {
      key: 'k',
      length: data.length,
      maxResumes: 2,
      openAt: async (at) => {
        opened++;
        return body(data.subarray(at, at + 1024), 'ECONNRESET');
      },
      toError: mapped,
    });
    await expect(buffer(out)).rejects.toMatchObject({ code: 'mapped', cause: { code: 'ECONNRESET' } });
    expect(opened).toBe(2);
  });

  it('fails at once on an error that is not a network error, and passes on what openAt throws', async () => {
    let opened = 0;
    const other = resumableGet(body(data.subarray(0, 1024), 'EACCES'), {
      key: 'k',
      length: data.length,
      openAt: async () => {
        opened++;
        return body(data);
      },
      toError: mapped,
    });
    await expect(buffer(other)).rejects.toMatchObject({ code: 'mapped', cause: { code: 'EACCES' } });
    expect(opened).toBe(0);
    const changed = resumableGet(body(data.subarray(0, 1024), 'ECONNRESET'), {
      key: 'k',
      length: data.length,
      openAt: async () => {
        throw Object.assign(new Error('replaced'), { code: 'changed' });
      },
      toError: mapped,
    });
    await expect(buffer(changed)).rejects.toMatchObject({ code: 'changed' });
  });

  it('without a length, an end is the end; destroying the output destroys the body', async () => {
    expect((await buffer(resumableGet(body(data), { key: 'k', openAt: async () => body(data), toError: mapped }))).equals(data)).toBe(true);
    const source = new Readable({ read() {} });
    source.push(data);
    const out = resumableGet(source, { key: 'k', length: data.length * 2, openAt: async () => body(data), toError: mapped });
    await new Promise((resolve) => out.once('data', resolve));
    out.destroy();
    await new Promise((resolve) => source.once('close', resolve));
    expect(source.destroyed).toBe(true);
  });
});
