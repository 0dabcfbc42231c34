// A minimal, streaming tar reader (POSIX ustar, plus the GNU long-name and pax path extensions), enough to
// unpack cifar-10-binary.tar.gz. Regular files and folders are written; links and devices are skipped; no
// entry may land outside the destination folder.
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { DatasetDownloadError } from '../errors/index.ts';

const BLOCK = 512;

export interface TarEntryInfo {
  /** Path inside the archive, '/'-separated, without a leading './' or trailing '/'. */
  readonly path: string;
  readonly type: 'file' | 'directory' | 'skipped';
  readonly size: number;
}

/** Pulls exact byte counts out of a stream of chunks. */
class ByteReader {
  private readonly it: AsyncIterator<Uint8Array>;
  private chunk: Buffer = Buffer.alloc(0);
  private pos = 0;
  private ended = false;
  consumed = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** Makes sure unread bytes are buffered; false at the end of the stream. */
  private async fill(): Promise<boolean> {
    while (this.pos >= this.chunk.length) {
      if (this.ended) return false;
      const next = await this.it.next();
      if (next.done) {
        this.ended = true;
        return false;
      }
      this.chunk = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
      this.pos = 0;
    }
    return true;
  }

  /** Exactly n bytes, or null when the stream ends before the first of them; throws when it ends midway. */
  async readExact(n: number): Promise<Buffer | null> {
    if (!(await this.fill())) return null;
    if (this.chunk.length - this.pos >= n) {
      const out = this.chunk.subarray(this.pos, this.pos + n);
      this.pos += n;
      this.consumed += n;
      return out;
    }
    const parts: Buffer[] = [];
    let got = 0;
    for await (const part of this.take(n)) {
      parts.push(Buffer.from(part));
      got += part.length;
    }
    return Buffer.concat(parts, got);
  }

  /** Yields slices totalling exactly n bytes (valid until the next call); throws when the stream ends first. */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (!(await this.fill())) {
        throw new DatasetDownloadError(`the tar archive ends early, ${left} bytes short of ${this.consumed + left}`);
      }
      const m = Math.min(left, this.chunk.length - this.pos);
      const out = this.chunk.subarray(this.pos, this.pos + m);
      this.pos += m;
      this.consumed += m;
      left -= m;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.take(n)) {
      // discard
    }
  }
}

function cString(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const nul = field.indexOf(0);
  return field.subarray(0, nul === -1 ? field.length : nul).toString('utf8');
}

function numberField(block: Buffer, start: number, length: number, what: string): number {
  const field = block.subarray(start, start + length);
  if (field[0] & 0x80) {
    // GNU base-256: big-endian two's complement with the top bit of the first byte as the marker.
    let value = field[0] & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i];
    if (!Number.isSafeInteger(value)) throw new DatasetDownloadError(`a tar header's ${what} is too large`);
    return value;
  }
  const text = cString(block, start, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new DatasetDownloadError(`a tar header's ${what} field "${text}" is not octal`);
  return parseInt(text, 8);
}

function checksumOk(block: Buffer): boolean {
  const stored = numberField(block, 148, 8, 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

/** Pax extended header records: "<len> <key>=<value>\n". */
function parsePax(body: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < body.length) {
    const space = body.indexOf(0x20, pos);
    if (space === -1) break;
    const len = parseInt(body.subarray(pos, space).toString('ascii'), 10);
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > body.length) break;
    const record = body.subarray(space + 1, pos + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}

/** The archive path made safe: relative, no '..', no empty result. */
function safeRelative(name: string): string {
  const parts = name.replace(/\\/g, '/').split('/').filter((p) => p !== '' && p !== '.');
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name) || parts.some((p) => p === '..') || parts.length === 0) {
    throw new DatasetDownloadError(`the tar archive holds an unsafe path "${name}" and was not unpacked`);
  }
  return parts.join('/');
}

/**
 * Unpacks the tar stream `source` (already decompressed) into `destDir`, which must exist. Returns the
 * entries in archive order. Throws DatasetDownloadError on a damaged archive or an unsafe path; files written
 * before that stay, so callers should extract into a temporary folder.
 */
export async function extractTar(source: AsyncIterable<Uint8Array>, destDir: string): Promise<TarEntryInfo[]> {
  const reader = new ByteReader(source);
  const entries: TarEntryInfo[] = [];
  let longName: string | undefined;
  let paxPath: string | undefined;
  for (;;) {
    const header = await reader.readExact(BLOCK);
    if (header === null) {
      if (entries.length === 0) throw new DatasetDownloadError('the tar archive is empty');
      break; // some writers omit the two zero blocks at the end
    }
    if (header.every((b) => b === 0)) break;
    if (!checksumOk(header)) {
      throw new DatasetDownloadError(`the tar archive is damaged: bad header checksum at byte ${reader.consumed - BLOCK}`);
    }
    const size = numberField(header, 124, 12, 'size');
    const type = String.fromCharCode(header[156] || 0x30);
    const padded = Math.ceil(size / BLOCK) * BLOCK;

    if (type === 'x' || type === 'L' || type === 'g' || type === 'K') {
      const body = (await reader.readExact(padded)) ?? Buffer.alloc(0);
      if (body.length < padded) throw new DatasetDownloadError('the tar archive ends inside an extended header');
      if (type === 'x') paxPath = parsePax(body.subarray(0, size)).get('path') ?? paxPath;
      if (type === 'L') longName = cString(body, 0, size);
      continue;
    }

    let name = cString(header, 0, 100);
    const magic = header.subarray(257, 262).toString('latin1');
    const prefix = magic === 'ustar' ? cString(header, 345, 155) : '';
    if (prefix !== '') name = `${prefix}/${name}`;
    if (longName !== undefined) name = longName;
    if (paxPath !== undefined) name = paxPath;
    longName = undefined;
    paxPath = undefined;

    const rel = safeRelative(name);
    const target = path.join(destDir, ...rel.split('/'));
    if (type === '5') {
      await mkdir(target, { recursive: true });
      entries.push({ path: rel, type: 'directory', size: 0 });
      await reader.skip(padded);
    } else if (type === '0' || type === '7') {
      await mkdir(path.dirname(target), { recursive: true });
      const out = await open(target, 'wx');
      try {
        for await (const part of reader.take(size)) {
          for (let done = 0; done < part.length; ) {
            done += (await out.write(part, done, part.length - done)).bytesWritten;
          }
        }
      } finally {
        await out.close();
      }
      await reader.skip(padded - size);
      entries.push({ path: rel, type: 'file', size });
    } else {
      await reader.skip(padded); // links, devices, FIFOs: not needed, not written
      entries.push({ path: rel, type: 'skipped', size });
    }
  }
  return entries;
}
