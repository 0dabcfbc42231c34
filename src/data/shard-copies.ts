import { IMAGE_BYTES } from './cifar10-dataset.ts';

/** Reused memory for a shard's transformed copies. */
export interface ShardCopies {
  images: Uint8Array;
  labels: Uint8Array;
}

/**
 * A shard's images transformed (augmented), as a small image set of their own: image k is `transform` of image
 * indices[k] of `images`, with its label. `buffer` is reused between calls when big enough.
 */
export function shardCopies(
  images: Uint8Array,
  labels: Uint8Array,
  indices: Int32Array,
  transform: (src: Uint8Array, srcOffset: number, dst: Uint8Array, dstOffset: number, image: number) => void,
  buffer?: ShardCopies,
): ShardCopies {
  const n = indices.length;
  const out = buffer && buffer.labels.length >= n ? buffer : { images: new Uint8Array(n * IMAGE_BYTES), labels: new Uint8Array(n) };
  for (let k = 0; k < n; k++) {
    const j = indices[k];
    transform(images, j * IMAGE_BYTES, out.images, k * IMAGE_BYTES, j);
    out.labels[k] = labels[j];
  }
  return out;
}
