import { IMAGE_BYTES } from '../data/cifar10-dataset.ts';
import { symmetricEigen, type SymmetricEigen } from '../math/symmetric-eigen.ts';
import { CIFAR10_MEAN, CIFAR10_STD } from './input-normalization.ts';

/**
 * airbench's whitening initialisation of its first convolution (2×2, valid, 3 → 24; its init_whitening_conv):
 * the uncentred covariance of every 2×2×3 patch of the normalised training images it is given (airbench: the
 * first 5,000), its eigen-decomposition, and as filters the 12 eigenvectors divided by √(eigenvalue + 5e-4),
 * largest eigenvalue first, followed by their 12 negatives.
 *
 * The result must be the same bits on every machine (it is part of the run's initial weights), so:
 * - the covariance is exact up to its last step: the pixel moments Σ b_i·b_j and Σ b_i of the byte patches are
 *   integers, summed exactly in float64 (below 2⁵³) in any order; the normalisation (b/255 − mean)/std enters
 *   through one fixed float64 formula per entry;
 * - the eigen-decomposition is the project's cyclic Jacobi solver (src/math/symmetric-eigen.ts: +, −, ×, ÷ and
 *   √ only, fixed order), with eigenvectors signed so their largest component is positive;
 * - the filters are computed in float64 and rounded to float32 once.
 * airbench computes the covariance in float32 (of float16 images) and calls torch.linalg.eigh; the tests compare
 * with torch.linalg.eigh in float64 on the same patches.
 */
export const WHITENING_EPS = 5e-4;
/** Patch side (the whitening convolution's kernel size). */
export const PATCH = 2;
/** Values per patch: 2 × 2 × 3, in PyTorch's (channel, dy, dx) order. */
export const PATCH_VALUES = 3 * PATCH * PATCH;

/** The 12×12 uncentred covariance (row-major, float64) of the normalised 2×2×3 patches of `count` NHWC byte images. */
export function patchCovariance(
  images: Uint8Array, count: number, mean: readonly number[] = CIFAR10_MEAN, std: readonly number[] = CIFAR10_STD,
): Float64Array {
  if (!Number.isSafeInteger(count) || count < 1 || images.length < count * IMAGE_BYTES) {
    throw new RangeError(`patchCovariance needs ${count} images of ${IMAGE_BYTES} bytes; got ${images.length} bytes.`);
  }
  const side = 32 - PATCH + 1;
  const patches = count * side * side;
  // Σ b_i·b_j over all patches stays an exact integer in float64 while below 2⁵³.
  if (patches * 255 * 255 >= 2 ** 53) throw new RangeError(`patchCovariance: ${count} images are too many to sum exactly.`);
  const K = PATCH_VALUES;
  // Offsets of the 12 patch values from the patch's top-left byte, in (c, dy, dx) order.
  const offsets = new Int32Array(K);
  const channel = new Int32Array(K);
  for (let c = 0; c < 3; c++) {
    for (let dy = 0; dy < PATCH; dy++) {
      for (let dx = 0; dx < PATCH; dx++) {
        const i = c * PATCH * PATCH + dy * PATCH + dx;
        offsets[i] = (dy * 32 + dx) * 3 + c;
        channel[i] = c;
      }
    }
  }
  const products = new Float64Array(K * K);
  const sums = new Float64Array(K);
  // Per image the sums fit int32 (961 × 255² < 2³¹): integer arithmetic there, float64 across images.
  const imageProducts = new Int32Array(K * K);
  const imageSums = new Int32Array(K);
  const b = new Int32Array(K);
  for (let img = 0; img < count; img++) {
    imageProducts.fill(0);
    imageSums.fill(0);
    const base = img * IMAGE_BYTES;
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const at = base + (y * 32 + x) * 3;
        for (let i = 0; i < K; i++) b[i] = images[at + offsets[i]];
        for (let i = 0; i < K; i++) {
          const bi = b[i];
          imageSums[i] += bi;
          const row = i * K;
          for (let j = i; j < K; j++) imageProducts[row + j] += bi * b[j];
        }
      }
    }
    for (let i = 0; i < K; i++) {
      sums[i] += imageSums[i];
      for (let j = i; j < K; j++) products[i * K + j] += imageProducts[i * K + j];
    }
  }
  // z = (b − 255·m_c) / (255·s_c):  Σ z_i z_j = (S_ij − 255·m_j·T_i − 255·m_i·T_j + N·255²·m_i·m_j) / (255²·s_i·s_j)
  const cov = new Float64Array(K * K);
  for (let i = 0; i < K; i++) {
    for (let j = i; j < K; j++) {
      const mi = 255 * mean[channel[i]];
      const mj = 255 * mean[channel[j]];
      const numerator = products[i * K + j] - mj * sums[i] - mi * sums[j] + patches * mi * mj;
      const value = numerator / (255 * std[channel[i]] * (255 * std[channel[j]])) / patches;
      cov[i * K + j] = value;
      cov[j * K + i] = value;
    }
  }
  return cov;
}

export interface WhiteningInit {
  /** The convolution's kernel in TensorFlow.js layout [2, 2, 3, 24] (float32): filter k at [dy][dx][c][k]. */
  readonly kernel: Float32Array;
  /** The patch covariance and its decomposition (float64). */
  readonly covariance: Float64Array;
  readonly eigen: SymmetricEigen;
}

/**
 * The whitening kernel from `count` NHWC byte images: filter k (k < 12) = eigenvector k / √(eigenvalue k + eps)
 * (eigenvalues descending), filter 12 + k = −filter k. The layer's bias starts at 0 (airbench zeroes it).
 */
export function whiteningInit(
  images: Uint8Array, count: number, eps = WHITENING_EPS, mean: readonly number[] = CIFAR10_MEAN, std: readonly number[] = CIFAR10_STD,
): WhiteningInit {
  const covariance = patchCovariance(images, count, mean, std);
  const eigen = symmetricEigen(covariance, PATCH_VALUES);
  const K = PATCH_VALUES;
  const out = 2 * K;
  const kernel = new Float32Array(PATCH * PATCH * 3 * out);
  for (let k = 0; k < K; k++) {
    const scale = Math.sqrt(eigen.values[k] + eps);
    for (let c = 0; c < 3; c++) {
      for (let dy = 0; dy < PATCH; dy++) {
        for (let dx = 0; dx < PATCH; dx++) {
          const value = Math.fround(eigen.vectors[k * K + c * PATCH * PATCH + dy * PATCH + dx] / scale);
          const at = ((dy * PATCH + dx) * 3 + c) * out;
          kernel[at + k] = value;
          kernel[at + K + k] = -value;
        }
      }
    }
  }
  return { kernel, covariance, eigen };
}
