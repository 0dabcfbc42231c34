// Turning stored bytes into the float32 input a network takes: x / 255, NHWC, one image after another.
import { IMAGE_BYTES, type ImageSet } from './cifar10-dataset.ts';

/** BYTE_TO_FLOAT[v] = Math.fround(v / 255): exact division, rounded once, no per-pixel divide. */
const BYTE_TO_FLOAT = new Float32Array(256);
for (let v = 0; v < 256; v++) BYTE_TO_FLOAT[v] = v / 255;

function checkOut(out: Float32Array, n: number): void {
  if (out.length < n * IMAGE_BYTES) {
    throw new RangeError(
      `fillImageBatch: the output holds ${out.length} floats but ${n} images need ${n * IMAGE_BYTES}.`,
    );
  }
}

function copyImage(images: Uint8Array, index: number, out: Float32Array, at: number): void {
  const from = index * IMAGE_BYTES;
  for (let k = 0; k < IMAGE_BYTES; k++) out[at + k] = BYTE_TO_FLOAT[images[from + k]];
}

/**
 * Throws a RangeError naming the first of `indices` that is no image of a set of `count` (its position too):
 * the one check of image indices, done where a shard's indices come in.
 */
export function checkImageIndices(indices: ArrayLike<number>, count: number): void {
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i];
    if (!Number.isInteger(j) || j < 0 || j >= count) throw new RangeError(`Image index ${j} (position ${i}) is outside the ${count} images of the set.`);
  }
}

/**
 * Writes images `indices` of `set` as float32 x/255, NHWC, one after another, into `out` (which must hold at
 * least indices.length × 3072 floats) and returns out.subarray(0, indices.length × 3072).
 */
export function fillImageBatch(set: ImageSet, indices: ArrayLike<number>, out: Float32Array): Float32Array {
  const n = indices.length;
  checkOut(out, n);
  checkImageIndices(indices, set.count);
  for (let i = 0; i < n; i++) copyImage(set.images, indices[i], out, i * IMAGE_BYTES);
  return out.subarray(0, n * IMAGE_BYTES);
}

/** fillImageBatch for images start, start+1, …, end−1. */
export function fillImageRange(set: ImageSet, start: number, end: number, out: Float32Array): Float32Array {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > set.count) {
    throw new RangeError(`fillImageRange: range [${start}, ${end}) is not within the ${set.count} images.`);
  }
  const n = end - start;
  checkOut(out, n);
  const images = set.images;
  const from = start * IMAGE_BYTES;
  const total = n * IMAGE_BYTES;
  for (let k = 0; k < total; k++) out[k] = BYTE_TO_FLOAT[images[from + k]];
  return out.subarray(0, total);
}
