import { IMAGE_CHANNELS, IMAGE_HEIGHT, IMAGE_WIDTH } from './cifar10-dataset.ts';
import { reflectIndex } from './reflect-padding.ts';
import { SeededRandom, STREAM_AUGMENT_FLIP, STREAM_AUGMENT_TRANSLATE } from '../random/seeded-random.ts';
import { type ShardCopies, shardCopies } from './shard-copies.ts';

/**
 * airbench's training augmentation (its CifarLoader with flip and translate 2), per image:
 *   1. before the first epoch, a random half of the images is mirrored, once for the whole run;
 *   2. every epoch, a random translation of up to 2 px: the 32×32 crop at shift (dy, dx) ∈ [−2, 2]² of the
 *      2-px reflect-padded image;
 *   3. on every other epoch (airbench's odd epoch indices 1, 3, …: our epochs 2, 4, …, counted from 1 as the
 *      trainer does) every image is mirrored after the crop ("alternating flip").
 * On the NHWC bytes: normalisation commutes with each step (all are pixel moves), and the project normalises
 * in the network (src/model/input-normalization.ts), so the bytes are the only input.
 *
 * The draws are pure functions of (run seed, image index) for the flip and (run seed, epoch, image index) for
 * the shift, so whichever worker computes a shard produces the same pixels.
 */
export const TRANSLATE_PADDING = 2;

export interface FlipTranslateChoice {
  /** Crop shift in rows and columns, each in [−TRANSLATE_PADDING, TRANSLATE_PADDING]. */
  readonly dy: number;
  readonly dx: number;
  /** Mirrored before the epochs (drawn once per run and image). */
  readonly baseFlip: boolean;
  /** Every image mirrored after the crop this epoch (epoch even, counted from 1). */
  readonly flipAll: boolean;
}

/** What the augmentation does to training image `image` in epoch `epoch` (1-based) of a run seeded `seed`. */
export function flipTranslateChoice(seed: number, epoch: number, image: number): FlipTranslateChoice {
  if (!Number.isSafeInteger(epoch) || epoch < 1) throw new RangeError(`Epochs count from 1, got ${epoch}.`);
  const baseFlip = new SeededRandom(seed, STREAM_AUGMENT_FLIP, image).nextInt(2) === 1;
  const rng = new SeededRandom(seed, STREAM_AUGMENT_TRANSLATE, epoch, image);
  const span = 2 * TRANSLATE_PADDING + 1;
  const dy = rng.nextInt(span) - TRANSLATE_PADDING;
  const dx = rng.nextInt(span) - TRANSLATE_PADDING;
  return { dy, dx, baseFlip, flipAll: epoch % 2 === 0 };
}

/**
 * Writes the augmented copy of one NHWC byte image (`src` at `srcOffset`) into `dst` at `dstOffset`, composing
 * airbench's steps literally: out(y, x) = F(refl(y + dy), refl(x' + dx)) with x' = 31 − x when flipAll, and
 * F the image mirrored when baseFlip.
 */
export function flipTranslateImage(src: Uint8Array, srcOffset: number, dst: Uint8Array, dstOffset: number, choice: FlipTranslateChoice): void {
  const { dy, dx, baseFlip, flipAll } = choice;
  if (!(Math.abs(dy) <= TRANSLATE_PADDING && Math.abs(dx) <= TRANSLATE_PADDING)) {
    throw new RangeError(`A translation of (${dy}, ${dx}) is beyond the ${TRANSLATE_PADDING}-px padding.`);
  }
  const last = IMAGE_WIDTH - 1;
  for (let y = 0; y < IMAGE_HEIGHT; y++) {
    const sy = reflectIndex(y + dy, IMAGE_HEIGHT);
    for (let x = 0; x < IMAGE_WIDTH; x++) {
      const cropped = reflectIndex((flipAll ? last - x : x) + dx, IMAGE_WIDTH);
      const sx = baseFlip ? last - cropped : cropped;
      const from = srcOffset + (sy * IMAGE_WIDTH + sx) * IMAGE_CHANNELS;
      const to = dstOffset + (y * IMAGE_WIDTH + x) * IMAGE_CHANNELS;
      dst[to] = src[from];
      dst[to + 1] = src[from + 1];
      dst[to + 2] = src[from + 2];
    }
  }
}

/** The flip-and-translate augmented images of a shard in epoch `epoch` (1-based; ./shard-copies.ts). */
export function flipTranslateShard(
  seed: number, epoch: number, images: Uint8Array, labels: Uint8Array, indices: Int32Array, buffer?: ShardCopies,
): ShardCopies {
  return shardCopies(images, labels, indices, (src, from, dst, to, j) => flipTranslateImage(src, from, dst, to, flipTranslateChoice(seed, epoch, j)), buffer);
}
