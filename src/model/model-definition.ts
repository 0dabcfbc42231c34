import type * as tf from '@tensorflow/tfjs-core';

/** One trainable tensor of a model, in TensorFlow.js layout (conv kernels [kh, kw, in, out], dense [in, out]). */
export interface ParameterSpec {
  /** Keras weight name as written into model.json, e.g. `conv1/kernel`. */
  readonly name: string;
  readonly shape: readonly number[];
  /** Inputs feeding one output unit: PyTorch's default init draws uniformly from ±1/√fanIn. */
  readonly fanIn: number;
}

/** One row of `--summary` (as torchsummary prints). */
export interface LayerSummary {
  readonly name: string;
  readonly type: string;
  readonly outputShape: readonly number[];
  readonly parameters: number;
}

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
  /** Logits [n, classes] for images x [n, 32, 32, 3]. Called inside tf.tidy / tf.grads by the caller. */
  logits(params: readonly tf.Tensor[], x: tf.Tensor4D): tf.Tensor2D;
  /** The Keras `modelTopology` written to model.json, so tf.loadLayersModel rebuilds the same network. */
  kerasTopology(): object;
  summary(): LayerSummary[];
}
