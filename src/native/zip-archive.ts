/**
 * Reads selected files out of a .zip (a Python wheel), streaming each one through zlib to disk and checking its
 * CRC-32. Our own because the zip library already in the tree (adm-zip, a tfjs-node dependency) inflates in memory:
 * 40 s and 2.8 GB of RSS for the 788 MB libtensorflow_cc.so.2 of TensorFlow's wheel, against about 5 s here.
 * Handles what wheels use: stored and deflated entries, zip64 sizes and offsets; no encryption, no multi-disk.
 */
import fs from 'node:fs';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';

export interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localHeaderOffset: number;
}

/** The archive is not a readable zip, or an entry's bytes do not match its CRC. */
export class ZipFormatError extends Error {}

const EOCD = 0x06054b50;
const EOCD64_LOCATOR = 0x07064b50;
const EOCD64 = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX32 = 0xffffffff;

export class ZipArchive {
  private constructor(
    private readonly file: string,
    private readonly handle: FileHandle,
    readonly entries: ReadonlyMap<string, ZipEntry>,
  ) {}

  static async open(file: string): Promise<ZipArchive> {
    const handle = await open(file, 'r');
    try {
      return new ZipArchive(file, handle, await readCentralDirectory(handle, file));
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  /** Writes entry `name` to `dest` (through a temporary file renamed into place), with its CRC checked. */
  async extract(name: string, dest: string): Promise<void> {
    const entry = this.entries.get(name);
    if (!entry) throw new ZipFormatError(`${this.file} has no entry ${name}`);
    const header = await readAt(this.handle, entry.localHeaderOffset, 30);
    if (header.readUInt32LE(0) !== LOCAL) throw new ZipFormatError(`${this.file}: bad local header for ${name}`);
    const start = entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
    await mkdir(path.dirname(dest), { recursive: true });
    const tmp = `${dest}.part-${process.pid}`;
    const source = fs.createReadStream(this.file, { start, end: start + entry.compressedSize - 1, highWaterMark: 1 << 20 });
    const check = new Crc32Check();
    try {
      if (entry.method === 8) await pipeline(source, zlib.createInflateRaw({ chunkSize: 1 << 20 }), check, fs.createWriteStream(tmp));
      else if (entry.method === 0) await pipeline(source, check, fs.createWriteStream(tmp));
      else throw new ZipFormatError(`${this.file}: ${name} uses compression method ${entry.method}`);
      if (check.crc !== entry.crc32 || check.bytes !== entry.size) {
        throw new ZipFormatError(`${this.file}: ${name} is damaged (CRC or size mismatch)`);
      }
      await rename(tmp, dest);
    } catch (error) {
      await rm(tmp, { force: true });
      if (error instanceof ZipFormatError) throw error;
      throw new ZipFormatError(`${this.file}: could not extract ${name} (${(error as Error).message})`);
    }
  }
}

class Crc32Check extends Transform {
  crc = 0;
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.crc = zlib.crc32(chunk, this.crc);
    this.bytes += chunk.length;
    done(null, chunk);
  }
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, position);
  return buffer.subarray(0, bytesRead);
}

async function readCentralDirectory(handle: FileHandle, file: string): Promise<Map<string, ZipEntry>> {
  const { size } = await handle.stat();
  const tailLength = Math.min(size, 22 + 0xffff);
  const tail = await readAt(handle, size - tailLength, tailLength);
  let at = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD) {
      at = i;
      break;
    }
  }
  if (at < 0) throw new ZipFormatError(`${file} is not a zip archive (no end-of-central-directory record)`);
  let count = tail.readUInt16LE(at + 10);
  let dirSize = tail.readUInt32LE(at + 12);
  let dirOffset = tail.readUInt32LE(at + 16);
  if (at >= 20 && tail.readUInt32LE(at - 20) === EOCD64_LOCATOR) {
    const eocd64 = await readAt(handle, Number(tail.readBigUInt64LE(at - 20 + 8)), 56);
    if (eocd64.readUInt32LE(0) !== EOCD64) throw new ZipFormatError(`${file}: bad zip64 end-of-central-directory record`);
    count = Number(eocd64.readBigUInt64LE(32));
    dirSize = Number(eocd64.readBigUInt64LE(40));
    dirOffset = Number(eocd64.readBigUInt64LE(48));
  }
  const dir = await readAt(handle, dirOffset, dirSize);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > dir.length || dir.readUInt32LE(p) !== CENTRAL) throw new ZipFormatError(`${file}: damaged central directory`);
    const nameLength = dir.readUInt16LE(p + 28);
    const extraLength = dir.readUInt16LE(p + 30);
    const commentLength = dir.readUInt16LE(p + 32);
    const name = dir.toString('utf8', p + 46, p + 46 + nameLength);
    let size = dir.readUInt32LE(p + 24);
    let compressedSize = dir.readUInt32LE(p + 20);
    let localHeaderOffset = dir.readUInt32LE(p + 42);
    // Zip64: the fields that overflowed 32 bits follow, in this order, in extra field 0x0001.
    for (let e = p + 46 + nameLength; e + 4 <= p + 46 + nameLength + extraLength; ) {
      const id = dir.readUInt16LE(e);
      const length = dir.readUInt16LE(e + 2);
      if (id === 1) {
        let q = e + 4;
        if (size === MAX32) (size = Number(dir.readBigUInt64LE(q))), (q += 8);
        if (compressedSize === MAX32) (compressedSize = Number(dir.readBigUInt64LE(q))), (q += 8);
        if (localHeaderOffset === MAX32) localHeaderOffset = Number(dir.readBigUInt64LE(q));
      }
      e += 4 + length;
    }
    entries.set(name, { name, method: dir.readUInt16LE(p + 10), crc32: dir.readUInt32LE(p + 16), compressedSize, size, localHeaderOffset });
    p += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}
