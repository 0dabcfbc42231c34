import type { BackendName } from '../compute/backend.ts';
import type { LrScheduleName } from './lr-schedule.ts';

/**
 * Everything a run's result depends on. Recorded in every checkpoint; `--resume` refuses a checkpoint whose
 * settings differ from the model and data at hand. The worker count is deliberately absent: it never changes
 * the result.
 */
export interface RunSettings {
  readonly model: string;
  readonly parameterCount: number;
  readonly seed: number;
  readonly batchSize: number;
  readonly shards: number;
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly epochs: number;
  /** Learning-rate schedule over the run and its warm-up (see ./lr-schedule.ts). */
  readonly lrSchedule: LrScheduleName;
  readonly warmupEpochs: number;
  /** Decoupled (AdamW) weight decay; 0 for the tutorial's plain Adam. */
  readonly weightDecay: number;
  /** Random crop (4-pixel zero padding) and horizontal flip of every training image, seeded per image and step. */
  readonly augment: boolean;
  /** Label smoothing ε of the cross-entropy (0: none). */
  readonly labelSmoothing: number;
  readonly trainCount: number;
  readonly testCount: number;
  /** SHA-256 of the data set files (see src/data). */
  readonly dataFingerprint: string;
  /** Backend the shards are computed with; different backends round differently. */
  readonly backend: BackendName;
  /** What the backend's bytes depend on beyond these settings (src/compute/numerics-identity.ts): the pool's `numerics`. */
  readonly numerics: string;
}

/** The tutorial's recipe: constant learning rate, plain Adam, no augmentation, no label smoothing. */
export const TUTORIAL_RECIPE: Pick<RunSettings, 'lrSchedule' | 'warmupEpochs' | 'weightDecay' | 'augment' | 'labelSmoothing'> = {
  lrSchedule: 'constant',
  warmupEpochs: 0,
  weightDecay: 0,
  augment: false,
  labelSmoothing: 0,
};
