// Loader and wrapper of tutorial-cnn.wasm: the tutorial CNN's forward + backward fused into one WebAssembly SIMD
// module (source: ./assembly/index.ts; see ./README.md for why and how to rebuild).
import { BackendError } from '../../errors/index.ts';
import { WasmModule } from '../../wasm/wasm-module.ts';
import { checkImageIndices } from '../../data/image-batch.ts';

/** The flat parameter count the module is built for (parameterCount(tutorialCnn)). */
export const FUSED_TUTORIAL_PARAMETERS = 81_302;
const IMAGE_BYTES = 3072;
const CLASSES = 10;

/** Models with a fused implementation: `--backend auto` picks 'fused' for these when tfjs-node is not there. */
export function hasFusedImplementation(modelName: string): boolean {
  return modelName === 'tutorial';
}

interface Exports {
  memory: { buffer: ArrayBuffer };
  paramsPtr(): number;
  gradPtr(): number;
  inputPtr(): number;
  labelsPtr(): number;
  predPtr(): number;
  chunkCapacity(): number;
  parameterCount(): number;
  lossSum(): number;
  correctCount(): number;
  prepare(): void;
  beginGradient(): void;
  finishGradient(): void;
  trainChunk(n: number): void;
  evalChunk(n: number): number;
  setLabelSmoothing(epsilon: number): void;
}

export const FUSED_WASM_URL = new URL('./tutorial-cnn.wasm', import.meta.url);

const FUSED_WASM = new WasmModule<Exports>(FUSED_WASM_URL, (message) => new BackendError(`Backend 'fused' failed: ${message}`));

export interface FusedEvalResult {
  lossSum: number;
  predictions: Int32Array;
}

/**
 * One instance of the fused tutorial-CNN kernel (own memory). Not thread-safe; one per worker thread.
 * Results are a pure function of (weights, images, labels): byte-identical on every call and every instance.
 */
export class FusedTutorialCnn {
  private readonly x: Exports;
  private readonly chunk: number;
  private loaded = false;

  private constructor(x: Exports) {
    this.x = x;
    this.chunk = x.chunkCapacity();
    if (x.parameterCount() !== FUSED_TUTORIAL_PARAMETERS) {
      throw new BackendError(`tutorial-cnn.wasm is built for ${x.parameterCount()} parameters, not ${FUSED_TUTORIAL_PARAMETERS}: rebuild it (npm run build:wasm).`);
    }
  }

  static create(): FusedTutorialCnn {
    return new FusedTutorialCnn(FUSED_WASM.instantiate());
  }

  /** Label smoothing ε of the training loss and its gradient (evaluation always uses plain cross-entropy). */
  setLabelSmoothing(epsilon: number): void {
    if (!(epsilon >= 0 && epsilon < 1)) throw new RangeError(`Label smoothing must be in [0, 1), got ${epsilon}.`);
    this.x.setLabelSmoothing(epsilon);
  }

  /** Copies the flat weights (tfjs parameter order) in. */
  setWeights(weights: Float32Array): void {
    if (!(weights instanceof Float32Array) || weights.length !== FUSED_TUTORIAL_PARAMETERS) {
      throw new RangeError(`FusedTutorialCnn.setWeights needs ${FUSED_TUTORIAL_PARAMETERS} floats.`);
    }
    new Float32Array(this.x.memory.buffer, this.x.paramsPtr(), FUSED_TUTORIAL_PARAMETERS).set(weights);
    this.x.prepare();
    this.loaded = true;
  }

  /**
   * [gradient of Σ cross-entropy over images `indices` of `images`/`labels` (flat parameter order), loss sum,
   * correct count]: written into `out` (81,302 + 2 floats) when given, else into a fresh Float32Array.
   */
  gradient(images: Uint8Array, labels: Uint8Array, count: number, indices: Int32Array, out?: Float32Array): Float32Array {
    this.requireWeights();
    if (indices.length === 0) throw new RangeError('gradient() needs at least one image index.');
    const P = FUSED_TUTORIAL_PARAMETERS;
    if (out && out.length !== P + 2) throw new RangeError(`gradient() writes ${P + 2} floats, but its output array holds ${out.length}.`);
    checkImageIndices(indices, count);
    const x = this.x;
    x.beginGradient();
    for (let s = 0; s < indices.length; s += this.chunk) {
      const n = Math.min(this.chunk, indices.length - s);
      this.stage(images, labels, count, indices, s, n);
      x.trainChunk(n);
    }
    x.finishGradient();
    const result = out ?? new Float32Array(P + 2);
    result.set(new Float32Array(x.memory.buffer, x.gradPtr(), P));
    result[P] = x.lossSum();
    result[P + 1] = x.correctCount();
    return result;
  }

  /** Forward pass over images start..end−1: Σ cross-entropy and the argmax class of each. */
  evaluate(images: Uint8Array, labels: Uint8Array, count: number, start: number, end: number): FusedEvalResult {
    this.requireWeights();
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > count || start > end) {
      throw new RangeError(`evaluate(${start}, ${end}) is outside the ${count} images.`);
    }
    const predictions = new Int32Array(end - start);
    let lossSum = 0;
    const x = this.x;
    for (let s = start; s < end; s += this.chunk) {
      const n = Math.min(this.chunk, end - s);
      new Uint8Array(x.memory.buffer, x.inputPtr(), n * IMAGE_BYTES).set(images.subarray(s * IMAGE_BYTES, (s + n) * IMAGE_BYTES));
      new Uint8Array(x.memory.buffer, x.labelsPtr(), n).set(labels.subarray(s, s + n));
      checkLabels(labels, s, n);
      lossSum += x.evalChunk(n);
      predictions.set(new Int32Array(x.memory.buffer, x.predPtr(), n), s - start);
    }
    return { lossSum, predictions };
  }

  private requireWeights(): void {
    if (!this.loaded) throw new Error('FusedTutorialCnn: call setWeights() before gradient() or evaluate().');
  }

  /** Copies images indices[s..s+n) (checked by the caller) and their labels into the module's input area. */
  private stage(images: Uint8Array, labels: Uint8Array, count: number, indices: Int32Array, s: number, n: number): void {
    const x = this.x;
    const input = new Uint8Array(x.memory.buffer, x.inputPtr(), n * IMAGE_BYTES);
    const lab = new Uint8Array(x.memory.buffer, x.labelsPtr(), n);
    for (let i = 0; i < n; i++) {
      const j = indices[s + i];
      if (labels[j] >= CLASSES) throw new RangeError(`Label ${labels[j]} of image ${j} is not a class 0-${CLASSES - 1}.`);
      input.set(images.subarray(j * IMAGE_BYTES, (j + 1) * IMAGE_BYTES), i * IMAGE_BYTES);
      lab[i] = labels[j];
    }
  }
}

function checkLabels(labels: Uint8Array, s: number, n: number): void {
  for (let i = s; i < s + n; i++) {
    if (labels[i] >= CLASSES) throw new RangeError(`Label ${labels[i]} of image ${i} is not a class 0-${CLASSES - 1}.`);
  }
}
