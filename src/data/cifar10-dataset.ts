// The CIFAR-10 data set in memory, and loadCifar10, which reads, validates and converts it.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { DatasetError, InvalidOptionError } from '../errors/index.ts';
import {
  META_FILE,
  TEST_FILE,
  TRAIN_FILES,
  fixAdvice,
  parseMeta,
  readCifar10File,
  REAL_RECORDS_PER_FILE,
  RECORD_BYTES,
  recordLabels,
  recordsToNhwc,
  validateRecords,
} from './cifar10-files.ts';

/** 32×32 RGB, stored NHWC as bytes. */
export const IMAGE_HEIGHT = 32;
export const IMAGE_WIDTH = 32;
export const IMAGE_CHANNELS = 3;
export const IMAGE_BYTES = IMAGE_HEIGHT * IMAGE_WIDTH * IMAGE_CHANNELS;

/** A set of images held as bytes, NHWC (pixel (y, x) channel c of image i at i*3072 + (y*32 + x)*3 + c). */
export interface ImageSet {
  readonly count: number;
  /** count × 3072 bytes, backed by a SharedArrayBuffer so worker threads read it without a copy (empty when loaded with `pixels: false`). */
  readonly images: Uint8Array;
  /** count labels, 0–9, backed by a SharedArrayBuffer. */
  readonly labels: Uint8Array;
}

export interface Cifar10Dataset {
  readonly dir: string;
  /** batches.meta.txt, line i = name of label i. */
  readonly classNames: readonly string[];
  readonly train: ImageSet;
  readonly test: ImageSet;
  /** Hex SHA-256 over the files' bytes (all of them, whatever the limits) — identifies the data set. */
  readonly fingerprint: string;
}

export interface LoadCifar10Options {
  /** Keep only the first N training images (1 ≤ N ≤ training set size). */
  readonly trainLimit?: number;
  /** Keep only the first N test images (1 ≤ N ≤ test set size). */
  readonly testLimit?: number;
  /**
   * Keep the pixels (default true). False keeps only labels, counts and the fingerprint, and every ImageSet's
   * `images` is empty: what a coordinator whose workers are remote needs (they hold their own copies).
   */
  readonly pixels?: boolean;
}

function checkLimitValue(limit: number | undefined, flag: string): void {
  if (limit === undefined) return;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new InvalidOptionError(`${flag} must be a whole number of images ≥ 1, got ${limit}.`);
  }
}

function applyLimit(limit: number | undefined, available: number, flag: string, what: string, dir: string): number {
  if (limit === undefined) return available;
  if (limit > available) {
    throw new DatasetError(
      `${flag} ${limit} asks for more images than the ${what} set in ${dir} holds (${available}). ` +
        `Use ${flag} ${available} or less, or leave it out to use them all.`,
    );
  }
  return limit;
}

function sharedImageSet(count: number, pixels: boolean): { images: Uint8Array; labels: Uint8Array } {
  return {
    images: new Uint8Array(new SharedArrayBuffer(pixels ? count * IMAGE_BYTES : 0)),
    labels: new Uint8Array(new SharedArrayBuffer(count)),
  };
}

/**
 * Reads and validates every file in `dir` (all of them, whatever the limits) and converts the planar records to
 * NHWC bytes in SharedArrayBuffers. Throws a DatasetError naming the file for a missing, empty or truncated
 * file, a label outside 0–9, a bad batches.meta.txt, or training files of different lengths; it never returns
 * partial data.
 *
 * Files are read one at a time, in CIFAR10_FILES order, and each is converted and dropped before the next is
 * read, so the peak memory is the converted set plus one file (~30 MB), not twice the data set: every worker
 * process loads it.
 */
export async function loadCifar10(dir: string, opts: LoadCifar10Options = {}): Promise<Cifar10Dataset> {
  checkLimitValue(opts.trainLimit, '--train-limit');
  checkLimitValue(opts.testLimit, '--test-limit');
  const file = (name: string) => path.join(dir, name);
  const hash = createHash('sha256');
  // One buffer for all the files, each read after the previous one is converted (a real file is 30,730,000 bytes).
  const reuse = Buffer.allocUnsafe(REAL_RECORDS_PER_FILE * RECORD_BYTES);
  const pixels = opts.pixels ?? true;
  const convert = (bytes: Uint8Array, count: number, set: { images: Uint8Array; labels: Uint8Array }, at: number) =>
    pixels ? recordsToNhwc(bytes, 0, count, set.images, set.labels, at) : recordLabels(bytes, 0, count, set.labels, at);

  let perTrainFile = 0;
  let trainCount = 0;
  let train: { images: Uint8Array; labels: Uint8Array } | undefined;
  let trainDone = 0;
  for (const [f, name] of TRAIN_FILES.entries()) {
    const bytes = await readCifar10File(dir, name, reuse);
    hash.update(bytes);
    const count = validateRecords(bytes, file(name), dir);
    if (f === 0) {
      perTrainFile = count;
      trainCount = applyLimit(opts.trainLimit, perTrainFile * TRAIN_FILES.length, '--train-limit', 'training', dir);
      train = sharedImageSet(trainCount, pixels);
    } else if (count !== perTrainFile) {
      throw new DatasetError(
        `CIFAR-10 file ${file(name)} holds ${count} records but ${file(TRAIN_FILES[0])} ` +
          `holds ${perTrainFile}; the five training files must all be the same length (10,000 records each for ` +
          `the real data set). ${fixAdvice(dir)}`,
      );
    }
    const n = Math.min(count, trainCount - trainDone);
    if (n > 0) convert(bytes, n, train!, trainDone);
    trainDone += n;
  }

  const testBytes = await readCifar10File(dir, TEST_FILE, reuse);
  hash.update(testBytes);
  const testCount = validateRecords(testBytes, file(TEST_FILE), dir);
  const testKept = applyLimit(opts.testLimit, testCount, '--test-limit', 'test', dir);
  const test = sharedImageSet(testKept, pixels);
  convert(testBytes, testKept, test, 0);

  const metaBytes = await readCifar10File(dir, META_FILE);
  hash.update(metaBytes);
  const classNames = parseMeta(metaBytes, file(META_FILE), dir);

  return {
    dir,
    classNames,
    train: { count: trainCount, ...train! },
    test: { count: testKept, ...test },
    fingerprint: hash.digest('hex'),
  };
}
