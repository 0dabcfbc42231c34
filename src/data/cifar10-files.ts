// The CIFAR-10 binary format: file names, the 3,073-byte record, and the checks a folder must pass.
// Nothing here imports cifar10-dataset.ts (which imports this file), so there is no import cycle.
import { open, readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { DatasetError } from '../errors/index.ts';

/** Bytes in one colour plane: 32×32. */
export const PLANE_BYTES = 1024;
/** Bytes of one image's pixels (3 planes). */
export const PIXEL_BYTES = 3 * PLANE_BYTES;
/** One record: a label byte, then the red, green and blue planes, each 32×32 row-major. */
export const RECORD_BYTES = 1 + PIXEL_BYTES;
/** Records in each real file (the loader accepts any whole number ≥ 1). */
export const REAL_RECORDS_PER_FILE = 10_000;
export const CLASS_COUNT = 10;

export const TRAIN_FILES = [
  'data_batch_1.bin',
  'data_batch_2.bin',
  'data_batch_3.bin',
  'data_batch_4.bin',
  'data_batch_5.bin',
] as const;
export const TEST_FILE = 'test_batch.bin';
export const META_FILE = 'batches.meta.txt';
/**
 * Every file of the data set, in the order the fingerprint hashes them. The fingerprint is the SHA-256 of
 * these files concatenated: `cat data_batch_{1..5}.bin test_batch.bin batches.meta.txt | sha256sum`.
 */
export const CIFAR10_FILES: readonly string[] = [...TRAIN_FILES, TEST_FILE, META_FILE];

/** What to tell a user whose data folder is unusable. */
export function fixAdvice(dir: string): string {
  return (
    `Put a good copy of CIFAR-10 (binary version: ${CIFAR10_FILES.join(', ')}) in ${dir}, ` +
    `or delete that folder so the trainer downloads it again, or point --data / CIFAR10_DIR at another copy.`
  );
}

/** Names of the data set files that are not regular files in `dir` (all of them when `dir` does not exist). */
export async function missingCifar10Files(dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (const name of CIFAR10_FILES) {
    try {
      if (!(await stat(path.join(dir, name))).isFile()) missing.push(name);
    } catch {
      missing.push(name);
    }
  }
  return missing;
}

/** True when `dir` holds every file of the data set (presence only; loadCifar10 validates content). */
export async function hasCifar10Files(dir: string): Promise<boolean> {
  return (await missingCifar10Files(dir)).length === 0;
}

/**
 * Reads one data set file whole; a missing or unreadable file is a DatasetError naming it. With `reuse`, a file
 * that fits is read into it and the result is a view of it (valid until the next read into the same buffer):
 * loading reads six files one after another into one buffer instead of leaving six for the collector.
 */
export async function readCifar10File(dir: string, name: string, reuse?: Buffer): Promise<Buffer> {
  const file = path.join(dir, name);
  try {
    if (!reuse) return await readFile(file);
    const handle = await open(file, 'r');
    try {
      const size = (await handle.stat()).size;
      const into = size <= reuse.length ? reuse.subarray(0, size) : Buffer.allocUnsafe(size);
      let done = 0;
      while (done < size) {
        const { bytesRead } = await handle.read(into, done, size - done, done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return into.subarray(0, done);
    } finally {
      await handle.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      let dirNote = '';
      try {
        await readdir(dir);
      } catch {
        dirNote = ` (the folder ${dir} itself does not exist)`;
      }
      throw new DatasetError(`CIFAR-10 file ${file} is missing${dirNote}. ${fixAdvice(dir)}`, { cause: err });
    }
    if (code === 'EISDIR') {
      throw new DatasetError(`CIFAR-10 file ${file} is a folder, not a file. ${fixAdvice(dir)}`, { cause: err });
    }
    throw new DatasetError(
      `Cannot read CIFAR-10 file ${file}: ${(err as Error).message}. Check its permissions. ${fixAdvice(dir)}`,
      { cause: err },
    );
  }
}

/**
 * Checks a .bin file's bytes: a whole, non-zero number of records, every label 0–9. Returns the record
 * count. `file` is the path used in messages.
 */
export function validateRecords(bytes: Uint8Array, file: string, dir: string): number {
  if (bytes.length === 0) {
    throw new DatasetError(`CIFAR-10 file ${file} is empty (0 bytes). ${fixAdvice(dir)}`);
  }
  if (bytes.length % RECORD_BYTES !== 0) {
    const whole = Math.floor(bytes.length / RECORD_BYTES);
    throw new DatasetError(
      `CIFAR-10 file ${file} is truncated or not a CIFAR-10 binary file: its ${bytes.length} bytes are not a ` +
        `whole number of ${RECORD_BYTES}-byte records (${whole} records and ${bytes.length - whole * RECORD_BYTES} ` +
        `bytes over; a real file is ${REAL_RECORDS_PER_FILE * RECORD_BYTES} bytes). ${fixAdvice(dir)}`,
    );
  }
  const count = bytes.length / RECORD_BYTES;
  for (let r = 0, o = 0; r < count; r++, o += RECORD_BYTES) {
    const label = bytes[o];
    if (label >= CLASS_COUNT) {
      throw new DatasetError(
        `CIFAR-10 file ${file} is corrupt: record ${r} (byte offset ${o}) has label ${label}, but labels are ` +
          `0–${CLASS_COUNT - 1}. ${fixAdvice(dir)}`,
      );
    }
  }
  return count;
}

/**
 * Parses batches.meta.txt: exactly 10 non-empty lines (line i names label i); trailing blank lines (the
 * official file ends with some) and surrounding white space are ignored.
 */
export function parseMeta(bytes: Uint8Array, file: string, dir: string): string[] {
  const lines = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .toString('utf8')
    .split(/\r?\n/)
    .map((l) => l.trim());
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const bad = lines.findIndex((l) => l === '');
  if (lines.length !== CLASS_COUNT || bad !== -1) {
    const what =
      bad !== -1 && bad < CLASS_COUNT
        ? `line ${bad + 1} is empty`
        : `it has ${lines.length} class name${lines.length === 1 ? '' : 's'}`;
    throw new DatasetError(
      `CIFAR-10 file ${file} must hold ${CLASS_COUNT} non-empty class names, one per line (airplane … truck), ` +
        `but ${what}. ${fixAdvice(dir)}`,
    );
  }
  return lines;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Copies the labels of `count` records starting at record `fromRecord` of `src` to `labels` at `toImage`. */
export function recordLabels(src: Uint8Array, fromRecord: number, count: number, labels: Uint8Array, toImage: number): void {
  for (let r = 0; r < count; r++) labels[toImage + r] = src[(fromRecord + r) * RECORD_BYTES];
}

/**
 * Converts `count` planar records (label, R plane, G plane, B plane) starting at record `fromRecord` of
 * `src` into NHWC pixels at image `toImage` of `images` and labels at `toImage` of `labels`.
 */
export function recordsToNhwc(
  src: Uint8Array,
  fromRecord: number,
  count: number,
  images: Uint8Array,
  labels: Uint8Array,
  toImage: number,
): void {
  recordLabels(src, fromRecord, count, labels, toImage);
  if (LITTLE_ENDIAN && images.byteOffset % 4 === 0) {
    // 4 pixels (12 bytes RGBRGBRGBRGB) at a time as three 32-bit words: about twice as fast as byte stores.
    const out = new Uint32Array(images.buffer, images.byteOffset, images.byteLength >>> 2);
    for (let r = 0; r < count; r++) {
      const red = (fromRecord + r) * RECORD_BYTES + 1;
      const green = red + PLANE_BYTES;
      const blue = green + PLANE_BYTES;
      let w = ((toImage + r) * PIXEL_BYTES) >>> 2;
      for (let p = 0; p < PLANE_BYTES; p += 4, w += 3) {
        out[w] = src[red + p] | (src[green + p] << 8) | (src[blue + p] << 16) | (src[red + p + 1] << 24);
        out[w + 1] = src[green + p + 1] | (src[blue + p + 1] << 8) | (src[red + p + 2] << 16) | (src[green + p + 2] << 24);
        out[w + 2] = src[blue + p + 2] | (src[red + p + 3] << 8) | (src[green + p + 3] << 16) | (src[blue + p + 3] << 24);
      }
    }
    return;
  }
  for (let r = 0; r < count; r++) {
    const red = (fromRecord + r) * RECORD_BYTES + 1;
    const green = red + PLANE_BYTES;
    const blue = green + PLANE_BYTES;
    let d = (toImage + r) * PIXEL_BYTES;
    for (let p = 0; p < PLANE_BYTES; p++, d += 3) {
      images[d] = src[red + p];
      images[d + 1] = src[green + p];
      images[d + 2] = src[blue + p];
    }
  }
}
