/**
 * airbench's input normalisation, per channel: z = (x − mean) / std on pixels x in [0, 1].
 *
 * It lives in the network, not in the data path: the airbench models start with a frozen 1×1 convolution
 * (3 → 3, kernel diag(1/std), bias −mean/std), so that the network's input is the [0, 1] image everywhere —
 * training, eval, `npm run predict` and tf.loadLayersModel of the saved model.json all feed the same pixels
 * to the same network. It costs 9 multiply-adds per pixel forward and nothing backward (frozen, and no
 * gradient to the input is needed). It cannot be folded into the whitening convolution after it: that layer's
 * bias is trained with weight decay, which would then pull toward another point.
 */
export const CIFAR10_MEAN: readonly [number, number, number] = [0.4914, 0.4822, 0.4465];
export const CIFAR10_STD: readonly [number, number, number] = [0.247, 0.2435, 0.2616];

/** The normalisation layer's weights in TensorFlow.js layout: kernel [1, 1, 3, 3] = diag(1/std), bias [3] = −mean/std (float32). */
export function normalizationLayerWeights(mean = CIFAR10_MEAN, std = CIFAR10_STD): { kernel: Float32Array; bias: Float32Array } {
  const kernel = new Float32Array(9);
  const bias = new Float32Array(3);
  for (let c = 0; c < 3; c++) {
    kernel[c * 3 + c] = 1 / std[c];
    bias[c] = -mean[c] / std[c];
  }
  return { kernel, bias };
}
