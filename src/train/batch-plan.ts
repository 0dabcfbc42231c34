import { SeededRandom, STREAM_SHUFFLE } from '../random/seeded-random.ts';

/**
 * How one epoch's images are ordered, batched and cut into shards. A pure function of (seed, epoch, image
 * count, batch size, shard count): the same on the coordinator, on resume, and whatever the worker count.
 */
export function epochPermutation(seed: number, epoch: number, imageCount: number): Int32Array {
  return new SeededRandom(seed, STREAM_SHUFFLE, epoch).permutation(imageCount);
}

export function stepsPerEpoch(imageCount: number, batchSize: number): number {
  return Math.ceil(imageCount / batchSize);
}

/** The images of batch `step` of an epoch (the last batch may be short, as PyTorch's DataLoader keeps it). */
export function batchIndices(permutation: Int32Array, step: number, batchSize: number): Int32Array {
  return permutation.subarray(step * batchSize, Math.min(permutation.length, (step + 1) * batchSize));
}

/**
 * Cuts a batch into `shards` contiguous parts whose sizes differ by at most one (larger ones first); a batch
 * smaller than the shard count gives one shard per image. Empty shards are never produced.
 */
export function cutIntoShards(batch: Int32Array, shards: number): Int32Array[] {
  const parts = Math.min(shards, batch.length);
  const base = Math.floor(batch.length / parts);
  const extra = batch.length % parts;
  const out: Int32Array[] = [];
  let start = 0;
  for (let i = 0; i < parts; i++) {
    const size = base + (i < extra ? 1 : 0);
    out.push(batch.subarray(start, start + size));
    start += size;
  }
  return out;
}
