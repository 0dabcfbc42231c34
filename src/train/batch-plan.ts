import { SeededRandom, STREAM_SHUFFLE } from '../random/seeded-random.ts';

/**
 * How one epoch's images are ordered, batched and cut into shards. A pure function of (seed, epoch, image
 * count, batch size, shard count): the same on the coordinator, on resume, and whatever the worker count.
 */
export function epochPermutation(seed: number, epoch: number, imageCount: number): Int32Array {
  return new SeededRandom(seed, STREAM_SHUFFLE, epoch).permutation(imageCount);
}

/**
 * Batches per epoch: the last one may be short (PyTorch's DataLoader default), or, with `dropLast`, a last
 * partial batch is left out (drop_last=True, as airbench trains: 50,000 images in batches of 1024 are 48 steps
 * that see 49,152 of them; which ones changes with every epoch's shuffle).
 */
export function stepsPerEpoch(imageCount: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(imageCount / batchSize) : Math.ceil(imageCount / batchSize);
}

/**
 * Steps of a run of `epochs` epochs, which may be fractional: ceil(stepsPerEpoch × epochs), as airbench's
 * total_train_steps (9.9 epochs of 48 steps are 476 steps; the last epoch stops after 44 of its 48).
 */
export function totalTrainingSteps(stepsInEpoch: number, epochs: number): number {
  return Math.ceil(stepsInEpoch * epochs);
}

/** The 1-based epoch that global step `globalStep` (0-based) belongs to. */
export function epochOfStep(globalStep: number, stepsInEpoch: number): number {
  return Math.floor(globalStep / stepsInEpoch) + 1;
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
