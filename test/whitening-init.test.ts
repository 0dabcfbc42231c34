import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { symmetricEigen } from '../src/math/symmetric-eigen.ts';
import { patchCovariance, whiteningInit, WHITENING_EPS } from '../src/model/whitening-init.ts';
import { loadCifar10 } from '../src/data/cifar10-dataset.ts';
import { fixtureImages, TORCH_REFERENCE, ulps, type WhiteningRecord } from './fixtures/recipe-reference-inputs.ts';

const sha256 = (a: Float32Array | Float64Array) => createHash('sha256').update(Buffer.from(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

/** A symmetric n×n matrix with entries from an LCG; `spread` scales the diagonal to separate the eigenvalues. */
function symmetric(n: number, seed: number, spread = 0): Float64Array {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const v = next() + (i === j ? spread * i : 0);
      a[i * n + j] = v;
      a[j * n + i] = v;
    }
  }
  return a;
}

/** max |VᵀΛV − A| / max|A| and max |V·Vᵀ − I|. */
function decompositionErrors(a: Float64Array, n: number) {
  const { values, vectors } = symmetricEigen(a, n);
  let scale = 0;
  for (const x of a) scale = Math.max(scale, Math.abs(x));
  let reconstruction = 0;
  let orthogonality = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let r = 0;
      let o = 0;
      for (let k = 0; k < n; k++) {
        r += vectors[k * n + i] * values[k] * vectors[k * n + j];
        o += vectors[i * n + k] * vectors[j * n + k];
      }
      reconstruction = Math.max(reconstruction, Math.abs(r - a[i * n + j]) / scale);
      orthogonality = Math.max(orthogonality, Math.abs(o - (i === j ? 1 : 0)));
    }
  }
  return { values, vectors, reconstruction, orthogonality };
}

test('symmetricEigen: orthonormal eigenvectors that reconstruct the matrix, eigenvalues descending, largest component positive', (t) => {
  for (const [n, seed, spread] of [[12, 1, 0], [12, 2, 3], [5, 3, 0], [2, 4, 0], [1, 5, 0], [30, 6, 0.1]] as const) {
    const a = symmetric(n, seed, spread);
    const { values, vectors, reconstruction, orthogonality } = decompositionErrors(a, n);
    t.true(reconstruction < 1e-14, `n ${n} seed ${seed}: reconstruction ${reconstruction}`);
    t.true(orthogonality < 1e-14, `n ${n} seed ${seed}: orthogonality ${orthogonality}`);
    for (let k = 1; k < n; k++) t.true(values[k - 1] >= values[k]);
    for (let k = 0; k < n; k++) {
      const row = Array.from(vectors.subarray(k * n, (k + 1) * n));
      const big = row.reduce((b, x, i) => (Math.abs(x) > Math.abs(row[b]) ? i : b), 0);
      t.true(row[big] > 0);
    }
  }
});

test('symmetricEigen: diagonal, repeated and zero eigenvalues; refuses what is not a finite symmetric matrix', (t) => {
  const diag = symmetricEigen([3, 0, 0, 0, -1, 0, 0, 0, 7], 3);
  t.deepEqual([...diag.values], [7, 3, -1]);
  t.deepEqual([...diag.vectors], [0, 0, 1, 1, 0, 0, 0, 1, 0]);
  t.is(diag.sweeps, 1);
  const repeated = decompositionErrors(Float64Array.of(2, 1, 1, 1, 2, 1, 1, 1, 2), 3); // eigenvalues 4, 1, 1
  t.true(Math.abs(repeated.values[0] - 4) < 1e-15 && Math.abs(repeated.values[1] - 1) < 1e-15 && Math.abs(repeated.values[2] - 1) < 1e-15);
  t.true(repeated.orthogonality < 1e-15 && repeated.reconstruction < 1e-15);
  t.deepEqual([...symmetricEigen(new Float64Array(4), 2).values], [0, 0]);
  t.throws(() => symmetricEigen([1, 2, 3, 1], 2), { instanceOf: RangeError, message: /not symmetric at \(0, 1\)/ });
  t.throws(() => symmetricEigen([1, Number.NaN, Number.NaN, 1], 2), { instanceOf: RangeError, message: /is NaN/ });
  t.throws(() => symmetricEigen([1, 2, 3], 2), { instanceOf: RangeError });
});

test('symmetricEigen is the same bits on every machine: a fixed 12×12 problem against its recorded digest', (t) => {
  const { values, vectors, sweeps } = symmetricEigen(symmetric(12, 1), 12);
  t.is(sweeps, 8);
  // Recorded on the machine that wrote this solver; any engine or CPU must reproduce it (only + − × ÷ √).
  t.is(sha256(values), 'b2dfa8d80423e3420ddc322bc5b271a1433a58a243195296c803294727c78bae');
  t.is(sha256(vectors), '4c53706849f6837ae311cc3cf1b7d5918c8be2ac50e1417e863830eedbe74b75');
});

/**
 * Our whitening against the exact covariance and torch.linalg.eigh (float64) of the same patches. torch's
 * covariance is a float64 matmul over all patches (4.8 M for 5,000 images), off the exact value by up to ~5e-12
 * relative; ours is the exact value to a few float64 ulps. The eigen-decompositions therefore differ by what
 * that perturbation moves: eigenvalues by ~|ΔC|, eigenvectors by ~|ΔC| / (gap to the nearest eigenvalue).
 */
function compareWithTorch(t: import('ava').ExecutionContext, images: Uint8Array, ref: WhiteningRecord) {
  const ours = whiteningInit(images, ref.images);
  const top = ref.eigenvalues[0];
  let exact = 0;
  let torchCov = 0;
  for (let i = 0; i < 144; i++) {
    exact = Math.max(exact, Math.abs(ours.covariance[i] - ref.covarianceExact[i]) / top);
    torchCov = Math.max(torchCov, Math.abs(ref.covariance[i] - ref.covarianceExact[i]) / top);
  }
  t.true(exact < 1e-15, `covariance: max |ours − exact| / λ_max = ${exact}`);
  const perturbation = Math.max(torchCov, 1e-15);
  let values = 0;
  for (let k = 0; k < 12; k++) values = Math.max(values, Math.abs(ours.eigen.values[k] - ref.eigenvalues[k]) / top);
  t.true(values < 20 * perturbation, `eigenvalues: max |Δλ| / λ_max ${values} (covariance perturbation ${perturbation})`);
  let vectors = 0;
  for (let k = 0; k < 12; k++) {
    const gap = Math.min(...ref.eigenvalues.filter((_, l) => l !== k).map((l) => Math.abs(l - ref.eigenvalues[k]))) / top;
    for (let i = 0; i < 12; i++) vectors = Math.max(vectors, (Math.abs(ours.eigen.vectors[k * 12 + i] - ref.eigenvectors[k * 12 + i]) * gap) / perturbation);
  }
  t.true(vectors < 20, `eigenvectors: max |Δv|·gap / perturbation ${vectors}`);
  let kernel = 0;
  let kernelScale = 0;
  for (let i = 0; i < ours.kernel.length; i++) {
    kernel = Math.max(kernel, Math.abs(ours.kernel[i] - ref.kernel[i]));
    kernelScale = Math.max(kernelScale, Math.abs(ref.kernel[i]));
  }
  // The kernel is float32: equal to torch's up to float32 rounding plus the eigenvectors' difference.
  t.true(kernel / kernelScale < 1e-6, `kernel: max |Δ| ${kernel} of ${kernelScale}`);
  // airbench's own float32 path (float32 covariance and eigh) is the same to float32's precision.
  let float32 = 0;
  for (let k = 0; k < 12; k++) float32 = Math.max(float32, Math.abs(ours.eigen.values[k] - ref.eigenvaluesFloat32[k]) / top);
  t.true(float32 < 1e-6, `float32 eigh: max |Δλ| / λ_max ${float32}`);
  t.log(`covariance vs exact ${exact.toExponential(1)} (torch's ${torchCov.toExponential(1)}); vs torch float64: eigenvalues ${values.toExponential(1)}, ` +
    `eigenvectors ${vectors.toFixed(2)}× the perturbation / gap, kernel ${(kernel / kernelScale).toExponential(1)}; float32 eigh ${float32.toExponential(1)}; sweeps ${ours.eigen.sweeps}`);
  return ours;
}

/** The whitened patches' covariance W·C·Wᵀ (W: the 12 filters) is diag(λ/(λ + eps)): whitened, up to eps. */
function checkWhitened(t: import('ava').ExecutionContext, kernel: Float32Array, covariance: Float64Array, values: Float64Array) {
  const filter = (k: number, i: number) => {
    const c = Math.floor(i / 4);
    const dy = Math.floor((i % 4) / 2);
    const dx = i % 2;
    return kernel[((dy * 2 + dx) * 3 + c) * 24 + k];
  };
  let off = 0;
  let diag = 0;
  for (let k = 0; k < 12; k++) {
    for (let l = 0; l < 12; l++) {
      let s = 0;
      for (let i = 0; i < 12; i++) for (let j = 0; j < 12; j++) s += filter(k, i) * covariance[i * 12 + j] * filter(l, j);
      if (k === l) diag = Math.max(diag, Math.abs(s - values[k] / (values[k] + WHITENING_EPS)));
      else off = Math.max(off, Math.abs(s));
    }
    for (let i = 0; i < 12; i++) if (filter(k + 12, i) !== -filter(k, i)) t.fail(`filter ${k + 12} is not −filter ${k} at ${i}`);
  }
  t.true(diag < 1e-6 && off < 1e-6, `whitened covariance: diagonal off by ${diag}, off-diagonal up to ${off} (float32 filters)`);
  for (let k = 0; k < 12; k++) if (values[k] > 100 * WHITENING_EPS) t.true(values[k] / (values[k] + WHITENING_EPS) > 0.99);
}

test('whitening of the fixture images: torch.linalg.eigh\'s decomposition, a whitening kernel, and fixed bits', (t) => {
  const ref = TORCH_REFERENCE.whitening.fixture;
  const images = fixtureImages(ref.images);
  const ours = compareWithTorch(t, images, ref);
  checkWhitened(t, ours.kernel, ours.covariance, ours.eigen.values);
  t.is(sha256(ours.kernel), 'b1ebeddb28dcd83854ad655205b6e6a5cefd435af851276374a75892d036cdd8', 'the kernel\'s bits as recorded');
  t.deepEqual(patchCovariance(images, ref.images), ours.covariance, 'deterministic');
});

const REAL_DIR = process.env.CIFAR10_DIR ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared/cifar-10-batches-bin');
const realTest = existsSync(path.join(REAL_DIR, 'data_batch_1.bin')) && TORCH_REFERENCE.whitening.cifar10First5000 ? test : test.skip;

realTest('whitening of the first 5,000 CIFAR-10 training images (airbench\'s init): torch.linalg.eigh\'s decomposition and fixed bits', async (t) => {
  const ref = TORCH_REFERENCE.whitening.cifar10First5000!;
  const data = await loadCifar10(REAL_DIR, { trainLimit: ref.images, testLimit: 1 });
  const started = performance.now();
  const ours = compareWithTorch(t, data.train.images, ref);
  t.log(`whiteningInit of 5,000 images: ${(performance.now() - started).toFixed(0)} ms; eigenvalues ${[...ours.eigen.values].map((v) => v.toPrecision(3)).join(' ')}`);
  checkWhitened(t, ours.kernel, ours.covariance, ours.eigen.values);
  t.is(sha256(ours.kernel), '48779f62e697caa0a7dd50e5fbe3ac3ae996e76316e78fb7f01091d94c3a4213', 'the kernel\'s bits as recorded');
});
