import { IMAGE_CHANNELS, IMAGE_HEIGHT, IMAGE_WIDTH } from './cifar10-dataset.ts';
import { SeededRandom, STREAM_AUGMENT } from '../random/seeded-random.ts';
import { type ShardCopies, shardCopies } from './shard-copies.ts';

/** Zero padding around the image before the random 32×32 crop (the usual CIFAR-10 recipe). */
export const CROP_PADDING = 4;

/** The random choices for one image: crop offset in the padded image (0..2·padding) and a mirror flag. */
export interface AugmentChoice {
  readonly dx: number;
  readonly dy: number;
  readonly flip: boolean;
}

/**
 * What augmentation does to training image `image` at step `step` of a run seeded `seed`. A pure function of
 * the three, so whichever worker computes a shard produces the same pixels. (An image is seen once per epoch,
 * so seeding per step is seeding per image and epoch.)
 */
export function augmentChoice(seed: number, step: number, image: number): AugmentChoice {
  const rng = new SeededRandom(seed, STREAM_AUGMENT, step, image);
  const span = 2 * CROP_PADDING + 1;
  return { dx: rng.nextInt(span), dy: rng.nextInt(span), flip: rng.nextInt(2) === 1 };
}

/**
 * Writes the augmented copy of one NHWC byte image (`src` at `srcOffset`) into `dst` at `dstOffset`:
 * random crop of the zero-padded image, then horizontal flip.
 */
export function augmentImage(src: Uint8Array, srcOffset: number, dst: Uint8Array, dstOffset: number, choice: AugmentChoice): void {
  const shiftX = choice.dx - CROP_PADDING;
  const shiftY = choice.dy - CROP_PADDING;
  for (let y = 0; y < IMAGE_HEIGHT; y++) {
    const sy = y + shiftY;
    for (let x = 0; x < IMAGE_WIDTH; x++) {
      const sx = (choice.flip ? IMAGE_WIDTH - 1 - x : x) + shiftX;
      const to = dstOffset + (y * IMAGE_WIDTH + x) * IMAGE_CHANNELS;
      if (sy < 0 || sy >= IMAGE_HEIGHT || sx < 0 || sx >= IMAGE_WIDTH) {
        dst[to] = 0;
        dst[to + 1] = 0;
        dst[to + 2] = 0;
      } else {
        const from = srcOffset + (sy * IMAGE_WIDTH + sx) * IMAGE_CHANNELS;
        dst[to] = src[from];
        dst[to + 1] = src[from + 1];
        dst[to + 2] = src[from + 2];
      }
    }
  }
}

/** The crop-and-flip augmented images of a shard at `step` (./shard-copies.ts). */
export function augmentShard(
  seed: number, step: number, images: Uint8Array, labels: Uint8Array, indices: Int32Array, buffer?: ShardCopies,
): ShardCopies {
  return shardCopies(images, labels, indices, (src, from, dst, to, j) => augmentImage(src, from, dst, to, augmentChoice(seed, step, j)), buffer);
}
