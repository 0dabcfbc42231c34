/**
 * What a worker must know of the run's recipe to compute a shard: the training images' augmentation (seeded from
 * the run's seed and the step or epoch, so any worker draws the same) and label smoothing. Everything else of
 * the recipe (optimizer, schedule, weight decay, lookahead) is the coordinator's.
 */
export type AugmentationName = 'none' | 'crop-flip' | 'flip-translate';

/**
 * - 'crop-flip': a random crop of the 4-pixel zero-padded image and a random horizontal flip, per step and image
 *   (src/data/augmentation.ts);
 * - 'flip-translate': airbench's: half the images mirrored once for the run, every image mirrored on even
 *   epochs, and a random translation of up to 2 px of the reflect-padded image per epoch
 *   (src/data/flip-translate-augmentation.ts).
 */
export const AUGMENTATIONS: readonly AugmentationName[] = ['none', 'crop-flip', 'flip-translate'];

export interface TrainingRecipe {
  readonly seed: number;
  readonly augmentation: AugmentationName;
  readonly labelSmoothing: number;
  /** Steps per epoch: 'flip-translate' draws per epoch, and a shard knows only its global step. */
  readonly stepsPerEpoch: number;
}

/** The tutorial's: plain images, one-hot targets. */
export const PLAIN_RECIPE: TrainingRecipe = { seed: 0, augmentation: 'none', labelSmoothing: 0, stepsPerEpoch: 1 };
