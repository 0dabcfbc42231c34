import type { BackendName } from '../compute/backend.ts';
import type { AugmentationName } from '../compute/training-recipe.ts';
import type { LossReduction } from './optimizer/optimizer.ts';
import type { LrScheduleName } from './lr-schedule.ts';

/** The optimizers a run can use. */
export type OptimizerName = 'adam' | 'sgd';
export const OPTIMIZERS: readonly OptimizerName[] = ['adam', 'sgd'];

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
  /** The base learning rate (Adam's, or SGD's before the schedule's factor). */
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Epochs of the run; may be fractional (the last epoch then stops part-way: ceil(steps per epoch × epochs) steps in all). */
  readonly epochs: number;
  /** Learning-rate schedule over the run and its warm-up (see ./lr-schedule.ts). */
  readonly lrSchedule: LrScheduleName;
  readonly warmupEpochs: number;
  /**
   * Weight decay: with Adam decoupled (AdamW); with SGD torch's coupled weight_decay of the base group — a group
   * at k× the learning rate gets weight_decay / k, so every group decays by lr·weightDecay per step (airbench).
   */
  readonly weightDecay: number;
  readonly optimizer: OptimizerName;
  /** SGD's momentum (0: none) and Nesterov's variant. */
  readonly momentum: number;
  readonly nesterov: boolean;
  /** Batch norm's biases (betas) train at this multiple of the learning rate (SGD; 1 for Adam). */
  readonly biasLrScale: number;
  /** 'mean': the gradient of the batch's mean loss (PyTorch's default); 'sum': of its summed loss (airbench). */
  readonly lossReduction: LossReduction;
  /** Layers whose tensors train in the first N epochs only, as `layer=N,…` ('' none): airbench's `whiten=3`. */
  readonly layerEpochs: string;
  /** airbench's lookahead: an EMA of all weights the weights are reset to every 5 steps (./lookahead.ts). */
  readonly lookahead: boolean;
  /** The final evaluation uses test-time augmentation (airbench's 6 views). */
  readonly tta: boolean;
  readonly augmentation: AugmentationName;
  /** Label smoothing ε of the cross-entropy (0: none). */
  readonly labelSmoothing: number;
  /** A last partial batch of every epoch is left out (drop_last). */
  readonly dropLast: boolean;
  readonly trainCount: number;
  readonly testCount: number;
  /** SHA-256 of the data set files (see src/data). */
  readonly dataFingerprint: string;
  /** Backend the shards are computed with; different backends round differently. */
  readonly backend: BackendName;
  /** What the backend's bytes depend on beyond these settings (src/compute/numerics-identity.ts): the pool's `numerics`. */
  readonly numerics: string;
}

/** The tutorial's recipe: constant learning rate, plain Adam, the mean loss, no augmentation, no label smoothing. */
export const TUTORIAL_RECIPE: Pick<
  RunSettings,
  'lrSchedule' | 'warmupEpochs' | 'weightDecay' | 'optimizer' | 'momentum' | 'nesterov' | 'biasLrScale' | 'lossReduction' | 'layerEpochs' |
  'lookahead' | 'tta' | 'augmentation' | 'labelSmoothing' | 'dropLast'
> = {
  lrSchedule: 'constant',
  warmupEpochs: 0,
  weightDecay: 0,
  optimizer: 'adam',
  momentum: 0,
  nesterov: false,
  biasLrScale: 1,
  lossReduction: 'mean',
  layerEpochs: '',
  lookahead: false,
  tta: false,
  augmentation: 'none',
  labelSmoothing: 0,
  dropLast: false,
};
