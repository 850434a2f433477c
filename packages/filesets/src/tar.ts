/*
 * A minimal POSIX tar (pax interchange format) writer and a strict reader for what it writes.
 * Each member is a ustar header, preceded by a pax extended header ('x') only when a value does
 * not fit ustar: sub-second or pre-1970 mtimes, names or link targets that are long or not
 * ASCII, sizes of 8 GiB and more. Owners are not recorded (uid/gid 0). Any pax-aware tar reads
 * it (the tests check GNU tar). The reader reports regular files, folders, symlinks and hard
 * links (so the caller can refuse the last) and applies 'x' headers; a bad checksum, a non-ustar
 * header or a truncated stream is `stowage.files.corrupt`.
 */
import { FileSetError, FileSetErrorCode } from './errors.js';

export const BLOCK = 512;
/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

const MAX_OCTAL_11 = 0o77777777777;
const MAX_PAX_BYTES = 1024 * 1024;

/** What a member header says. */
export interface TarHeader {
  /** Member name; folders end with '/'. */
  name: string;
  type: 'file' | 'directory' | 'symlink';
  /** Content bytes (0 unless a file). */
  size: number;
  mode: number;
  /** Modification time in whole milliseconds since the epoch. */
  mtimeMs: number;
  /** Symlink target. */
  linkname?: string;
}

const TYPEFLAG: Record<TarHeader['type'], string> = { file: '0', directory: '5', symlink: '2' };

/** Zero bytes that pad `size` bytes of content to a whole block. */
export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

const isPlainAscii = (text: string): boolean => /^[\x20-\x7e]*$/.test(text);

/** Splits a name into ustar `prefix` and `name` fields, or `undefined` when it does not fit. */
function splitName(name: string): { prefix: string; name: string } | undefined {
  if (!isPlainAscii(name)) return undefined;
  if (name.length <= 100) return { prefix: '', name };
  for (let slash = name.indexOf('/'); slash !== -1; slash = name.indexOf('/', slash + 1)) {
    if (slash <= 155 && name.length - slash - 1 <= 100 && slash < name.length - 1) {
      return { prefix: name.slice(0, slash), name: name.slice(slash + 1) };
    }
  }
  return undefined;
}

/** One pax record: `"<length> <key>=<value>\n"`, the length counting itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bytes = Buffer.byteLength(body);
  let length = bytes + String(bytes).length;
  if (String(length).length > String(bytes).length) length += 1;
  return `${length}${body}`;
}

function writeString(block: Buffer, offset: number, length: number, value: string): void {
  block.write(value, offset, length, 'utf8');
}

function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  writeString(block, offset, length - 1, value.toString(8).padStart(length - 1, '0'));
}

function ustarBlock(fields: { name: string; prefix: string; typeflag: string; size: number; mode: number; mtime: number; linkname: string }): Buffer {
  const block = Buffer.alloc(BLOCK);
  writeString(block, 0, 100, fields.name);
  writeOctal(block, 100, 8, fields.mode);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  writeOctal(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, fields.mtime);
  block.fill(0x20, 148, 156);
  writeString(block, 156, 1, fields.typeflag);
  writeString(block, 157, 100, fields.linkname);
  writeString(block, 257, 6, 'ustar\0');
  writeString(block, 263, 2, '00');
  writeOctal(block, 329, 8, 0);
  writeOctal(block, 337, 8, 0);
  writeString(block, 345, 155, fields.prefix);
  let sum = 0;
  for (const byte of block) sum += byte;
  writeString(block, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}

/** The header block(s) of one member: a pax header when needed, then the ustar header. */
export function encodeTarHeader(header: TarHeader): Buffer {
  const pax: string[] = [];
  const split = splitName(header.name);
  if (split === undefined) pax.push(paxRecord('path', header.name));
  const linkname = header.linkname ?? '';
  const linkFits = isPlainAscii(linkname) && linkname.length <= 100;
  if (!linkFits) pax.push(paxRecord('linkpath', linkname));
  const seconds = Math.floor(header.mtimeMs / 1000);
  const mtimeFits = seconds >= 0 && seconds <= MAX_OCTAL_11;
  if (!mtimeFits || header.mtimeMs % 1000 !== 0) pax.push(paxRecord('mtime', (header.mtimeMs / 1000).toFixed(3)));
  if (header.size > MAX_OCTAL_11) pax.push(paxRecord('size', String(header.size)));

  const fallbackName = header.name.replace(/[^\x20-\x7e]/g, '_').slice(-100);
  const ustar = ustarBlock({
    name: split?.name ?? fallbackName,
    prefix: split?.prefix ?? '',
    typeflag: TYPEFLAG[header.type],
    size: header.size > MAX_OCTAL_11 ? 0 : header.size,
    mode: header.mode & 0o7777,
    mtime: mtimeFits ? seconds : 0,
    linkname: linkFits ? linkname : '',
  });
  if (pax.length === 0) return ustar;

  const records = Buffer.from(pax.join(''), 'utf8');
  const base = fallbackName.slice(fallbackName.lastIndexOf('/', fallbackName.length - 2) + 1);
  const paxHeader = ustarBlock({
    name: `PaxHeaders/${base}`.slice(0, 100),
    prefix: '',
    typeflag: 'x',
    size: records.length,
    mode: 0o644,
    mtime: mtimeFits ? seconds : 0,
    linkname: '',
  });
  return Buffer.concat([paxHeader, records, padding(records.length), ustar]);
}

/** A member as read. `type` is `other` for anything this format never writes. */
export interface TarMember {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';
  typeflag: string;
  size: number;
  linkname: string;
}

function corrupt(why: string): FileSetError {
  return new FileSetError(FileSetErrorCode.Corrupt, `Not a readable file-set archive: ${why}`);
}

/** Pulls exact byte counts out of a chunked stream. */
class ByteReader {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;

  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  private async fill(bytes: number): Promise<boolean> {
    while (this.buffered < bytes && !this.ended) {
      const next = await this.source.next();
      if (next.done === true) this.ended = true;
      else if (next.value.byteLength > 0) {
        this.chunks.push(Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength));
        this.buffered += next.value.byteLength;
      }
    }
    return this.buffered >= bytes;
  }

  /** Exactly `bytes` bytes, or `undefined` when the stream ends first. */
  async exact(bytes: number): Promise<Buffer | undefined> {
    if (!(await this.fill(bytes))) return undefined;
    const parts: Buffer[] = [];
    for await (const part of this.take(bytes)) parts.push(part);
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** The next `bytes` bytes as they arrive; the stream ending first is corruption. */
  async *take(bytes: number): AsyncGenerator<Buffer> {
    let left = bytes;
    while (left > 0) {
      if (!(await this.fill(1))) throw corrupt('the archive is truncated');
      const head = this.chunks[0] as Buffer;
      const part = head.length <= left ? head : head.subarray(0, left);
      if (part === head) this.chunks.shift();
      else this.chunks[0] = head.subarray(left);
      this.buffered -= part.length;
      left -= part.length;
      yield part;
    }
  }

  async skip(bytes: number): Promise<void> {
    for await (const part of this.take(bytes)) void part;
  }
}

function octal(block: Buffer, offset: number, length: number, field: string): number {
  const text = block
    .toString('latin1', offset, offset + length)
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
  if (!/^[0-7]*$/.test(text)) throw corrupt(`bad ${field} field in a header`);
  return text === '' ? 0 : parseInt(text, 8);
}

function text(block: Buffer, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return field.toString('utf8', 0, end === -1 ? length : end);
}

function parsePax(records: Buffer): Map<string, string> {
  const values = new Map<string, string>();
  let offset = 0;
  while (offset < records.length) {
    const space = records.indexOf(0x20, offset);
    const length = Number(records.toString('latin1', offset, space));
    if (
      space === -1 ||
      !Number.isSafeInteger(length) ||
      length <= space - offset + 1 ||
      offset + length > records.length ||
      records[offset + length - 1] !== 0x0a
    ) {
      throw corrupt('malformed pax header');
    }
    const record = records.toString('utf8', space + 1, offset + length - 1);
    const equals = record.indexOf('=');
    if (equals === -1) throw corrupt('malformed pax record');
    values.set(record.slice(0, equals), record.slice(equals + 1));
    offset += length;
  }
  return values;
}

const MEMBER_TYPES: Record<string, TarMember['type']> = { '0': 'file', '\0': 'file', '5': 'directory', '2': 'symlink', '1': 'hardlink' };

/**
 * The members of a tar stream, in order, each with its content. A member's `content` must be
 * consumed (or left alone) before asking for the next member; whatever is left is skipped.
 */
export async function* readTar(source: AsyncIterable<Uint8Array>): AsyncGenerator<{ member: TarMember; content: AsyncIterable<Buffer> }> {
  const iterator = source[Symbol.asyncIterator]();
  try {
    yield* readMembers(new ByteReader(iterator));
  } finally {
    await iterator.return?.();
  }
}

async function* readMembers(reader: ByteReader): AsyncGenerator<{ member: TarMember; content: AsyncIterable<Buffer> }> {
  let pax = new Map<string, string>();
  for (;;) {
    const block = await reader.exact(BLOCK);
    if (block === undefined) throw corrupt('the archive ends without its end marker (truncated?)');
    if (block.every((byte) => byte === 0)) return;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    if (sum !== octal(block, 148, 8, 'checksum')) throw corrupt('header checksum mismatch (is it still compressed or encrypted?)');
    if (block.toString('latin1', 257, 263) !== 'ustar\0') throw corrupt('not a POSIX ustar/pax archive (is it still compressed or encrypted?)');

    const typeflag = String.fromCharCode(block[156] as number);
    let size = octal(block, 124, 12, 'size');
    if (typeflag === 'x') {
      if (size > MAX_PAX_BYTES) throw corrupt('oversized pax header');
      const records = await reader.exact(size);
      if (records === undefined) throw corrupt('the archive is truncated');
      await reader.skip(padding(size).length);
      pax = parsePax(records);
      continue;
    }
    const prefix = text(block, 345, 155);
    const ustarName = text(block, 0, 100);
    const paxSize = pax.get('size');
    if (paxSize !== undefined) {
      if (!/^\d+$/.test(paxSize)) throw corrupt('bad pax size');
      size = Number(paxSize);
    }
    const member: TarMember = {
      name: pax.get('path') ?? (prefix === '' ? ustarName : `${prefix}/${ustarName}`),
      type: MEMBER_TYPES[typeflag] ?? 'other',
      typeflag,
      size,
      linkname: pax.get('linkpath') ?? text(block, 157, 100),
    };
    pax = new Map();
    let left = size;
    const content = (async function* () {
      for await (const part of reader.take(left)) {
        left -= part.length;
        yield part;
      }
    })();
    yield { member, content };
    await reader.skip(left + padding(size).length);
  }
}
