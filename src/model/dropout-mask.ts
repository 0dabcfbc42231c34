import { SeededRandom, STREAM_DROPOUT } from '../random/seeded-random.ts';

/**
 * Inverted-dropout multipliers for a batch: row k (image `images[k]` of the data set) holds, per feature,
 * 0 (dropped, probability `rate`) or 1/(1 − rate) (kept), drawn from SeededRandom(seed, STREAM_DROPOUT, step,
 * image). A pure function of (run seed, step, image): whichever worker computes a shard, and however the batch
 * is cut into shards, an image gets the same mask.
 */
export function dropoutMask(seed: number, step: number, images: Int32Array, features: number, rate: number): Float32Array {
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`Dropout rate must be in [0, 1), got ${rate}.`);
  const keep = Math.fround(1 / (1 - rate));
  const mask = new Float32Array(images.length * features);
  for (let k = 0; k < images.length; k++) {
    const rng = new SeededRandom(seed, STREAM_DROPOUT, step, images[k]);
    const row = k * features;
    for (let f = 0; f < features; f++) mask[row + f] = rng.nextFloat() < rate ? 0 : keep;
  }
  return mask;
}
