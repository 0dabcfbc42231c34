import type { ImageSet } from '../../data/cifar10-dataset.ts';
import type { BackendName } from '../backend.ts';

/**
 * A batch of training images as an engine gets it: images `order[k]` of `set`, in batch order, already
 * augmented where the recipe augments (ShardComputer prepares it and checks every index).
 */
export interface TrainingBatch {
  readonly set: ImageSet;
  readonly order: Int32Array;
  /** The data-set index of each image of the batch, and the global step: what seeds dropout masks. */
  readonly imageIds: Int32Array;
  readonly step: number;
}

/** What an evaluation of test images finds. */
export interface Classification {
  /** Σ cross-entropy of the images. */
  readonly lossSum: number;
  /** The predicted class of each image. */
  readonly predictions: Int32Array;
}

/**
 * One thread's network: the maths of one model on one backend, behind which ShardComputer keeps the data side
 * (image indices, augmentation, label checks). Implementations, one per file: FusedEngine (the tutorial network
 * as one hand-written WebAssembly module) and TfjsEngine (any ModelDefinition on a tfjs backend). An engine's
 * results are a pure function of its weights and its input: the same bytes on every call.
 */
export interface NetworkEngine {
  readonly backend: BackendName;
  /** Copies the flat weights (parameterSlices order) in. */
  setWeights(weights: Float32Array): void;
  /**
   * Writes into `out` (parameterCount + 2 floats, every position written) the gradient of Σ cross-entropy over
   * the batch, in flat parameter order, then the loss sum and the number of correct predictions. The network
   * runs in training mode; at a batch-norm running statistic's position it writes n × the batch's value of
   * that statistic (see src/train/batch-norm-state.ts).
   */
  gradient(batch: TrainingBatch, out: Float32Array): void;
  /** Classifies images start..end−1 of `set` in evaluation mode. */
  evaluate(set: ImageSet, start: number, end: number): Classification;
  /** The logits [n, classes] of images start..end−1 of `set` in evaluation mode (what test-time augmentation combines), where the engine can give them. */
  logits?(set: ImageSet, start: number, end: number): Float32Array;
  dispose(): void;
}
