/**
 * What a worker must know of the run's recipe to compute a shard: augmentation (seeded from the run's seed and
 * the step) and label smoothing. Everything else of the recipe (schedule, weight decay) is the coordinator's.
 */
export interface TrainingRecipe {
  readonly seed: number;
  readonly augment: boolean;
  readonly labelSmoothing: number;
}

/** The tutorial's: plain images, one-hot targets. */
export const PLAIN_RECIPE: TrainingRecipe = { seed: 0, augment: false, labelSmoothing: 0 };
