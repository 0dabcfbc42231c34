import { createHash } from 'node:crypto';
import { readFloat32LE, writeFloat32LE } from '../fs/float32-le.ts';

/**
 * Binary layout of `checkpoint.bin` (all integers and floats little-endian):
 *
 *   offset 0        8 bytes   magic, ASCII "CIFARDP1"
 *   offset 8        uint32    H = byte length of the JSON header
 *   offset 12       H bytes   JSON header, UTF-8 (CheckpointHeader)
 *                   0–3 bytes zero padding, so the payload starts at a multiple of 4
 *   payloadOffset   payload   the float32 arrays named in header.arrays, one after the other, in that order
 *   end − 32        32 bytes  SHA-256 of every byte before it (magic, header and payload alike)
 *
 * The trailing hash makes a flipped bit anywhere detectable; the header records the exact payload size,
 * so a truncated file is told apart from a corrupt one.
 */
export const MAGIC = 'CIFARDP1';
export const HASH_BYTES = 32;
const PREFIX_BYTES = MAGIC.length + 4;

export interface ArrayEntry {
  readonly name: string;
  readonly length: number;
}

export interface DecodedFile {
  readonly header: unknown;
  readonly arrays: Map<string, Float32Array>;
}

/** Why a file could not be decoded; the caller turns it into a user-facing error naming the file. */
export class FormatProblem extends Error {
  constructor(
    readonly kind: 'not-a-checkpoint' | 'truncated' | 'corrupt',
    message: string,
  ) {
    super(message);
  }
}

export function align4(n: number): number {
  return (n + 3) & ~3;
}

/** Builds the whole file. `header.arrays` is filled in from `arrays`. */
export function encodeFile(header: Record<string, unknown>, arrays: readonly (ArrayEntry & { data: Float32Array })[]): Uint8Array {
  const headerBytes = Buffer.from(
    JSON.stringify({ ...header, arrays: arrays.map(({ name, data }) => ({ name, length: data.length })) }),
    'utf8',
  );
  const payloadOffset = align4(PREFIX_BYTES + headerBytes.length);
  const payloadBytes = arrays.reduce((n, a) => n + a.data.length * 4, 0);
  const out = new Uint8Array(payloadOffset + payloadBytes + HASH_BYTES);
  const view = new DataView(out.buffer);
  out.set(Buffer.from(MAGIC, 'latin1'), 0);
  view.setUint32(MAGIC.length, headerBytes.length, true);
  out.set(headerBytes, PREFIX_BYTES);
  let at = payloadOffset;
  for (const { data } of arrays) {
    writeFloat32LE(out, at, data);
    at += data.length * 4;
  }
  out.set(sha256(out.subarray(0, at)), at);
  return out;
}

/** Checks magic, sizes and hash, and splits the file into its JSON header and float32 arrays (fresh copies). */
export function decodeFile(bytes: Uint8Array): DecodedFile {
  if (bytes.length < MAGIC.length || Buffer.from(bytes.subarray(0, MAGIC.length)).toString('latin1') !== MAGIC) {
    if (bytes.length < MAGIC.length && Buffer.from(MAGIC, 'latin1').subarray(0, bytes.length).equals(bytes)) {
      throw new FormatProblem('truncated', `it is only ${bytes.length} bytes long`);
    }
    throw new FormatProblem('not-a-checkpoint', `it does not start with "${MAGIC}"`);
  }
  if (bytes.length < PREFIX_BYTES) throw new FormatProblem('truncated', `it ends inside the header (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(MAGIC.length, true);
  if (PREFIX_BYTES + headerLength > bytes.length) {
    throw new FormatProblem('truncated', `it ends inside the header (${bytes.length} bytes, the header alone needs ${PREFIX_BYTES + headerLength})`);
  }
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + headerLength)).toString('utf8'));
  } catch {
    throw new FormatProblem('corrupt', 'its header is not valid JSON');
  }
  const entries = arrayEntries(header);
  const payloadOffset = align4(PREFIX_BYTES + headerLength);
  const payloadBytes = entries.reduce((n, e) => n + e.length * 4, 0);
  const expected = payloadOffset + payloadBytes + HASH_BYTES;
  if (bytes.length < expected) throw new FormatProblem('truncated', `it is ${bytes.length} bytes long, its header says ${expected}`);
  if (bytes.length > expected) throw new FormatProblem('corrupt', `it is ${bytes.length} bytes long, its header says ${expected}`);
  const stored = bytes.subarray(expected - HASH_BYTES);
  if (!Buffer.from(stored).equals(sha256(bytes.subarray(0, expected - HASH_BYTES)))) {
    throw new FormatProblem('corrupt', 'its SHA-256 checksum does not match its contents');
  }
  const arrays = new Map<string, Float32Array>();
  let at = payloadOffset;
  for (const { name, length } of entries) {
    arrays.set(name, readFloat32LE(bytes, at, length));
    at += length * 4;
  }
  return { header, arrays };
}

function arrayEntries(header: unknown): ArrayEntry[] {
  const arrays = typeof header === 'object' && header !== null ? (header as { arrays?: unknown }).arrays : undefined;
  if (!Array.isArray(arrays)) throw new FormatProblem('corrupt', 'its header lists no arrays');
  const names = new Set<string>();
  return arrays.map((entry: unknown) => {
    const { name, length } = (typeof entry === 'object' && entry !== null ? entry : {}) as Partial<ArrayEntry>;
    if (typeof name !== 'string' || names.has(name) || !Number.isSafeInteger(length) || (length as number) < 0) {
      throw new FormatProblem('corrupt', `its header has an invalid array entry ${JSON.stringify(entry)}`);
    }
    names.add(name);
    return { name, length: length as number };
  });
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/** A float64's exact bits as 16 hex digits: round-trips NaN, ±Infinity and −0, which JSON numbers cannot. */
export function float64ToHex(value: number): string {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value, false);
  return view.getBigUint64(0, false).toString(16).padStart(16, '0');
}

export function float64FromHex(hex: unknown): number | undefined {
  if (typeof hex !== 'string' || !/^[0-9a-f]{16}$/.test(hex)) return undefined;
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`), false);
  return view.getFloat64(0, false);
}
