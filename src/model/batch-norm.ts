import * as tf from '@tensorflow/tfjs-core';
import { BatchNormReluKernel } from '../compute/kernels/batch-norm-relu-wasm.ts';

/** PyTorch's BatchNorm2d defaults. */
export const BN_EPSILON = 1e-5;
/** Weight of the new batch statistic in the running one (PyTorch's momentum; Keras writes it as 1 − 0.1 = 0.9). */
export const BN_MOMENTUM = 0.1;

/** Batch statistics of one batch-norm layer, per channel: the mean and the unbiased variance (PyTorch's choice for the running variance). */
export interface BatchStatistics {
  readonly mean: Float32Array;
  readonly unbiasedVariance: Float32Array;
}

/**
 * relu(batchNorm(x)) in training mode — PyTorch's BatchNorm2d followed by ReLU — with the batch's own
 * statistics over batch, height and width (biased variance in the normalisation, eps as given), and its
 * gradient for x, gamma and beta.
 *
 * Written as one custom op whose forward and backward passes run in the project's own WebAssembly module
 * (src/compute/kernels/batch-norm-relu-wasm.ts) over the tensors' values: tfjs's own gradients of
 * moments/batchNorm broadcast with Tile and reduce with transposing Sums, which cost ~20× more on the wasm
 * backend. Arithmetic is float64 in a fixed order, rounded to float32 once, so the result is the same on every
 * backend, thread and machine.
 *
 * `onStatistics` receives the batch's mean and unbiased variance (for the running statistics).
 */
export function batchNormReluTraining(
  x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number, onStatistics?: (stats: BatchStatistics) => void,
): tf.Tensor4D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xt, gt, bt] = args as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D];
    const C = xt.shape[3];
    const xv = xt.dataSync() as Float32Array;
    const g = gt.dataSync() as Float32Array;
    const m = xv.length / C;
    if (m < 2) throw new RangeError(`Batch norm in training mode needs more than one value per channel, got ${m}.`);
    const kernel = BatchNormReluKernel.instance();
    const fwd = kernel.forward(xv, C, g, bt.dataSync() as Float32Array, epsilon);
    onStatistics?.({
      mean: Float32Array.from(fwd.mean),
      unbiasedVariance: Float32Array.from(fwd.variance, (v) => (v * m) / (m - 1)),
    });
    const gradFunc = (dy: tf.Tensor): tf.Tensor[] => {
      const { dx, dGamma, dBeta } = kernel.backward(dy.dataSync() as Float32Array, fwd, g);
      return [tf.tensor4d(dx, xt.shape), tf.tensor1d(Float32Array.from(dGamma)), tf.tensor1d(Float32Array.from(dBeta))];
    };
    return { value: tf.tensor4d(fwd.y, xt.shape), gradFunc };
  });
  return op(x, gamma, beta) as tf.Tensor4D;
}
