import * as tf from '@tensorflow/tfjs-core';

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
 * Written as one custom op with a hand-written backward pass in plain JavaScript over the tensors' values:
 * tfjs's own gradients of moments/batchNorm broadcast with Tile and reduce with transposing Sums, which cost
 * ~20× more on the wasm backend than these two passes. Arithmetic is float64 in a fixed order, rounded to
 * float32 once, so the result is the same on every backend, thread and machine.
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
    const b = bt.dataSync() as Float32Array;
    const m = xv.length / C;
    if (m < 2) throw new RangeError(`Batch norm in training mode needs more than one value per channel, got ${m}.`);

    // Per-channel mean, then the variance from the centred values (two passes: exact, no cancellation).
    const mean = new Float64Array(C);
    for (let i = 0; i < xv.length; i += C) for (let c = 0; c < C; c++) mean[c] += xv[i + c];
    for (let c = 0; c < C; c++) mean[c] /= m;
    const variance = new Float64Array(C);
    for (let i = 0; i < xv.length; i += C) {
      for (let c = 0; c < C; c++) {
        const d = xv[i + c] - mean[c];
        variance[c] += d * d;
      }
    }
    const invStd = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      variance[c] /= m;
      invStd[c] = 1 / Math.sqrt(variance[c] + epsilon);
    }
    onStatistics?.({
      mean: Float32Array.from(mean),
      unbiasedVariance: Float32Array.from(variance, (v) => (v * m) / (m - 1)),
    });

    // x̂ (kept for the backward pass) and y = relu(γ·x̂ + β).
    const xhat = new Float32Array(xv.length);
    const y = new Float32Array(xv.length);
    for (let i = 0; i < xv.length; i += C) {
      for (let c = 0; c < C; c++) {
        const h = (xv[i + c] - mean[c]) * invStd[c];
        xhat[i + c] = h;
        const v = g[c] * h + b[c];
        y[i + c] = v > 0 ? v : 0;
      }
    }

    const gradFunc = (dy: tf.Tensor): tf.Tensor[] => {
      const dyv = dy.dataSync() as Float32Array;
      // Through the ReLU (gradient 0 where the output is 0), then dβ = Σ dy', dγ = Σ dy'·x̂.
      const dyr = new Float32Array(dyv.length);
      const dBeta = new Float64Array(C);
      const dGamma = new Float64Array(C);
      for (let i = 0; i < dyv.length; i += C) {
        for (let c = 0; c < C; c++) {
          const d = y[i + c] > 0 ? dyv[i + c] : 0;
          dyr[i + c] = d;
          dBeta[c] += d;
          dGamma[c] += d * xhat[i + c];
        }
      }
      // dx = γ·invStd · (dy' − dβ/m − x̂·dγ/m), the batch statistics' own dependence on x included.
      const dx = new Float32Array(dyv.length);
      const scale = new Float64Array(C);
      const meanDBeta = new Float64Array(C);
      const meanDGamma = new Float64Array(C);
      for (let c = 0; c < C; c++) {
        scale[c] = g[c] * invStd[c];
        meanDBeta[c] = dBeta[c] / m;
        meanDGamma[c] = dGamma[c] / m;
      }
      for (let i = 0; i < dyv.length; i += C) {
        for (let c = 0; c < C; c++) dx[i + c] = scale[c] * (dyr[i + c] - meanDBeta[c] - xhat[i + c] * meanDGamma[c]);
      }
      return [tf.tensor4d(dx, xt.shape), tf.tensor1d(Float32Array.from(dGamma)), tf.tensor1d(Float32Array.from(dBeta))];
    };
    return { value: tf.tensor4d(y, xt.shape), gradFunc };
  });
  return op(x, gamma, beta) as tf.Tensor4D;
}
