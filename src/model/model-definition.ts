import type * as tf from '@tensorflow/tfjs-core';

/**
 * What an entry of the flat vector is. 'parameter' (the default) is trained by Adam. The other two are batch
 * norm's running statistics: state, not trained, kept in the same vector so they travel with the weights
 * (publish, checkpoint, model files). See src/train/batch-norm-state.ts for how they are updated.
 */
export type ParameterKind = 'parameter' | 'running-mean' | 'running-variance';

/**
 * How a tensor starts when a run does not start from saved weights:
 * - 'fan-in' (default): PyTorch's default for Conv2d and Linear, uniform ±1/√fanIn, drawn from the run's seed;
 * - 'ones' / 'zeros': constants (PyTorch's BatchNorm2d: gamma and running variance 1, beta and running mean 0);
 * - 'dirac': 'fan-in', then torch.nn.init.dirac_ on the first C_in filters of a conv kernel (airbench's 3×3 convs);
 * - { constant }: exactly these values (a frozen normalisation layer's diag(1/std) and −mean/std);
 * - { whitening }: airbench's whitening filters of a 2×2 conv, computed from the first `images` training
 *   images normalised with `mean`/`std` (src/model/whitening-init.ts): bit-identical on every machine.
 */
export type ParameterInit =
  | 'fan-in' | 'ones' | 'zeros' | 'dirac'
  | { readonly constant: readonly number[] }
  | { readonly whitening: { readonly images: number; readonly eps: number; readonly mean: readonly number[]; readonly std: readonly number[] } };

/** One tensor of a model, in TensorFlow.js layout (conv kernels [kh, kw, in, out], dense [in, out]). */
export interface ParameterSpec {
  /** Keras weight name as written into model.json, e.g. `conv1/kernel`. */
  readonly name: string;
  readonly shape: readonly number[];
  /** Inputs feeding one output unit: PyTorch's default init draws uniformly from ±1/√fanIn. */
  readonly fanIn: number;
  /** Default 'parameter'. */
  readonly kind?: ParameterKind;
  /** Initial value (default 'fan-in'). */
  readonly init?: ParameterInit;
  /** The Keras layer it belongs to, and what it is there ('kernel', 'bias', 'gamma', 'beta', ...): recipes group tensors by these. */
  readonly layer?: string;
  readonly role?: string;
  /** Never changed by the optimizer (a Keras layer with `trainable: false`, or a weight the model file freezes). Default false. */
  readonly frozen?: boolean;
  /**
   * A running statistic's momentum, PyTorch's convention: running ← (1 − m)·running + m·batch value (Keras's
   * BatchNormalization momentum is 1 − m). Default 0.1, PyTorch's BatchNorm2d.
   */
  readonly momentum?: number;
}

/** One row of `--summary` (as torchsummary prints). */
export interface LayerSummary {
  readonly name: string;
  readonly type: string;
  readonly outputShape: readonly number[];
  readonly parameters: number;
}

/**
 * How a forward pass runs. Without one (or with `training: false`) it is evaluation: batch norm uses its
 * running statistics and dropout does nothing — what eval, predict and tf.loadLayersModel compute.
 */
export interface ForwardContext {
  /** Training mode: batch norm normalises with the batch's own statistics; dropout drops (when `dropout` is given). */
  readonly training: boolean;
  /**
   * Training only: what seeds the dropout masks — the run's seed, the global step and the data-set index of
   * each image of the batch, in row order (src/model/dropout-mask.ts). Absent: no dropout.
   */
  readonly dropout?: { readonly seed: number; readonly step: number; readonly images: Int32Array };
  /**
   * Training only: receives, for each running-statistic entry of `parameters` (by index), the batch's value of
   * that statistic: the mean, or the unbiased variance (as PyTorch updates its running variance with).
   */
  readonly batchStatistic?: (parameterIndex: number, values: Float32Array) => void;
}

/** Evaluation mode. */
export const EVAL_CONTEXT: ForwardContext = { training: false };

/**
 * A network the trainer can train data-parallel. It is a pure function of one flat parameter vector (split
 * into `parameters` in order) and a batch of NHWC images in [0, 1]; the coordinator owns the vector, the
 * workers only evaluate `logits` and its gradient.
 */
export interface ModelDefinition {
  readonly name: string;
  readonly inputShape: readonly [number, number, number];
  readonly classes: number;
  readonly parameters: readonly ParameterSpec[];
  /**
   * Logits [n, classes] for images x [n, 32, 32, 3]. Called inside tf.tidy / tf.grads by the caller. `context`
   * defaults to evaluation; a model without batch norm or dropout may ignore it.
   */
  logits(params: readonly tf.Tensor[], x: tf.Tensor4D, context?: ForwardContext): tf.Tensor2D;
  /** The Keras `modelTopology` written to model.json, so tf.loadLayersModel rebuilds the same network. */
  kerasTopology(): object;
  summary(): LayerSummary[];
}
