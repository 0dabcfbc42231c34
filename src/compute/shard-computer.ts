import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { ForwardContext, ModelDefinition } from '../model/model-definition.ts';
import { isTrainable, parameterSlices, type ParameterSlice } from '../model/parameter-vector.ts';
import { IMAGE_BYTES, type ImageSet } from '../data/cifar10-dataset.ts';
import type { EvalResult } from '../pool/worker-pool.ts';
import { shardResultLength } from '../pool/shard-result.ts';
import { BackendError, DatasetError } from '../errors/index.ts';
import { initBackend, numericsIdentity, type BackendChoice, type BackendName } from './backend.ts';
import { FusedTutorialCnn, hasFusedImplementation } from './fused/fused-tutorial-cnn.ts';
import { PLAIN_RECIPE, type TrainingRecipe } from './training-recipe.ts';
import { augmentShard } from '../data/augmentation.ts';

/** Largest number of test images pushed through the network at once by evaluate(). */
export const EVAL_CHUNK = 500;

/** byte → float32 in [0, 1]: one table lookup per pixel, the same bits on every machine. */
const BYTE_TO_UNIT = (() => {
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) t[b] = b / 255;
  return t;
})();

/**
 * The worker side of one training step: given the published weights and a shard's image indices, the
 * gradient of the summed cross-entropy, the loss sum and the number of correct predictions, as the flat
 * Float32Array that crosses to the coordinator (see ../pool/shard-result.ts). Also classifies test ranges.
 *
 * Everything runs on the tfjs backend chosen at create(); one ShardComputer per thread. Results are a pure
 * function of (weights, indices): the same inputs give byte-identical output on every call.
 */
export class ShardComputer {
  readonly backend: BackendName;
  readonly parameterCount: number;

  private readonly model: ModelDefinition;
  private readonly train: ImageSet;
  private readonly test: ImageSet;
  private readonly slices: readonly ParameterSlice[];
  /** Positions in `slices` of the trainable tensors (all of them unless the model has running statistics). */
  private readonly trainable: readonly number[];
  /** Positions in `slices` of batch norm's running statistics, which a shard reports n × its batch value for. */
  private readonly statistics: readonly number[];
  private readonly pixelsPerImage: number;
  private readonly classes: number;
  private weights: tf.Tensor[] | null = null;
  /** Backend 'fused': the model's own WebAssembly module replaces tfjs entirely. */
  private readonly fused: FusedTutorialCnn | null;
  /** Augmentation and label smoothing of the run (none by default: the tutorial's recipe). */
  private readonly recipe: TrainingRecipe;
  private augmented: { images: Uint8Array; labels: Uint8Array } | undefined;
  private shardOrder = new Int32Array(0);
  /** Reused input buffers, grown to the largest batch seen. */
  private pixels = new Float32Array(0);
  private oneHot = new Float32Array(0);
  private disposed = false;

  private constructor(backend: BackendName, model: ModelDefinition, train: ImageSet, test: ImageSet, recipe: TrainingRecipe) {
    this.backend = backend;
    this.model = model;
    this.train = train;
    this.test = test;
    this.slices = parameterSlices(model);
    this.trainable = this.slices.flatMap((s, i) => (isTrainable(s.spec) ? [i] : []));
    this.statistics = this.slices.flatMap((s, i) => (isTrainable(s.spec) ? [] : [i]));
    this.parameterCount = this.slices.reduce((n, s) => n + s.size, 0);
    this.pixelsPerImage = model.inputShape[0] * model.inputShape[1] * model.inputShape[2];
    this.classes = model.classes;
    this.fused = backend === 'fused' ? FusedTutorialCnn.create() : null;
    this.recipe = recipe;
    this.fused?.setLabelSmoothing(recipe.labelSmoothing);
  }

  static async create(
    model: ModelDefinition,
    sets: { train: ImageSet; test: ImageSet },
    backend: BackendChoice,
    opts: { allowNative?: boolean; recipe?: TrainingRecipe } = {},
  ): Promise<ShardComputer> {
    const recipe = opts.recipe ?? PLAIN_RECIPE;
    if (!(recipe.labelSmoothing >= 0 && recipe.labelSmoothing < 1)) {
      throw new RangeError(`Label smoothing must be in [0, 1), got ${recipe.labelSmoothing}.`);
    }
    const pixels = model.inputShape[0] * model.inputShape[1] * model.inputShape[2];
    if (pixels !== IMAGE_BYTES) {
      throw new DatasetError(
        `Model '${model.name}' expects ${model.inputShape.join('×')} inputs but the data set holds ${IMAGE_BYTES}-byte 32×32×3 images.`,
      );
    }
    for (const [name, set] of [['train', sets.train], ['test', sets.test]] as const) checkSet(name, set, model.classes);
    const fused = hasFusedImplementation(model.name);
    if (backend === 'fused' && !fused) {
      throw new BackendError(`Backend 'fused' has no implementation of model '${model.name}'. Use --backend wasm.`);
    }
    const name = await initBackend(backend, { allowNative: opts.allowNative, fused, model: model.name });
    return new ShardComputer(name, model, sets.train, sets.test, recipe);
  }

  /** What this computer's bytes depend on besides its inputs (./numerics-identity.ts). */
  get numerics(): string {
    return numericsIdentity(this.backend);
  }

  /** Replaces the weights with a copy of `weights` (flat, in parameterSlices order). */
  setWeights(weights: Float32Array): void {
    this.checkUsable();
    if (!(weights instanceof Float32Array) || weights.length !== this.parameterCount) {
      throw new RangeError(
        `setWeights needs a Float32Array of ${this.parameterCount} values for model '${this.model.name}', got ` +
          `${weights instanceof Float32Array ? weights.length + ' values' : typeof weights}.`,
      );
    }
    if (this.fused) {
      this.fused.setWeights(weights);
      return;
    }
    this.ensureBackend();
    // New tensors every time: the wasm backend caches XNNPACK operators (with packed weights) per filter
    // tensor, so the weights must never be overwritten in place. wasm copies on upload; cpu and node may keep
    // the array they are handed, so those get their own copy (the caller's array may be reused or shared).
    const copy = this.backend !== 'wasm';
    const next = this.slices.map(({ spec, offset, size }) => {
      const values = copy ? weights.slice(offset, offset + size) : weights.subarray(offset, offset + size);
      return tf.tensor(values, spec.shape as number[], 'float32');
    });
    this.disposeWeights();
    this.weights = next;
  }

  /**
   * Gradient of Σ cross-entropy over the training images `indices` (in flat parameter order), then the loss
   * sum and the number of correct predictions: parameterCount + 2 floats, written into `out` when given (every
   * position is written, so it may hold an earlier result), else into a fresh Float32Array. `step` seeds the augmentation (when the recipe has it) and dropout (when the model has it), so the same
   * shard gives the same result anywhere.
   *
   * The network runs in training mode. A batch-norm running statistic is not trained: at its positions the
   * result holds n × the shard's batch value of that statistic (n = the shard's images), so that the
   * coordinator's sum over shards ÷ batch size is the image-weighted mean (see src/train/batch-norm-state.ts).
   */
  gradient(indices: Int32Array, step = 0, out?: Float32Array): Float32Array {
    const P = this.parameterCount;
    if (out && out.length !== shardResultLength(P)) {
      throw new RangeError(`gradient() writes ${shardResultLength(P)} floats, but its output array holds ${out.length}.`);
    }
    const { set, order } = this.shardImages(indices, step);
    if (this.fused) {
      this.checkUsable();
      return this.fused.gradient(set.images, set.labels, set.count, order, out);
    }
    const weights = this.requireWeights();
    const n = order.length;
    if (n === 0) throw new RangeError('gradient() needs at least one image index.');
    const labels = set.labels;
    const oneHot = this.fillOneHot(order, set, this.recipe.labelSmoothing);
    const x = this.fillPixels(set, order);
    const result = out ?? new Float32Array(shardResultLength(P));
    let correct = 0;
    let reported = 0;
    const context: ForwardContext = {
      training: true,
      dropout: { seed: this.recipe.seed, step, images: indices },
      batchStatistic: (i, values) => {
        const { offset, size, spec } = this.slices[i];
        if (isTrainable(spec) || values.length !== size) {
          throw new RangeError(`Model '${this.model.name}' reported a batch statistic of ${values.length} values for '${spec.name}'.`);
        }
        for (let c = 0; c < size; c++) result[offset + c] = n * values[c];
        reported++;
      },
    };

    tf.tidy(() => {
      const xs = tf.tensor4d(x, [n, ...this.model.inputShape]);
      const ys = tf.tensor2d(oneHot, [n, this.classes]);
      // Only trainable tensors are differentiated (tf.grads refuses inputs the loss does not depend on, as the
      // running statistics in training mode); the others are passed in as they are.
      const all = weights.slice();
      const { value, grads } = tf.valueAndGrads((...params: tf.Tensor[]) => {
        this.trainable.forEach((slot, k) => (all[slot] = params[k]));
        const logits = this.model.logits(all, xs, context);
        correct = countCorrect(logits.dataSync() as Float32Array, order, labels, this.classes);
        return crossEntropySum(logits, ys);
      })(this.trainable.map((slot) => weights[slot]));
      for (let k = 0; k < grads.length; k++) this.readInto(grads[k], result, this.slices[this.trainable[k]].offset);
      result[P] = value.dataSync()[0];
    });
    if (reported !== this.statistics.length) {
      throw new Error(`Model '${this.model.name}' reported ${reported} batch statistics in training mode, expected ${this.statistics.length}.`);
    }
    result[P + 1] = correct;
    return result;
  }

  /** Classifies test images [start, end) in chunks of at most EVAL_CHUNK; lossSum is Σ cross-entropy. */
  evaluate(start: number, end: number): EvalResult {
    if (this.fused) {
      this.checkUsable();
      const { lossSum, predictions } = this.fused.evaluate(this.test.images, this.test.labels, this.test.count, start, end);
      return { start, lossSum, predictions };
    }
    const weights = this.requireWeights();
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > this.test.count || start > end) {
      throw new RangeError(`evaluate(${start}, ${end}) is outside the ${this.test.count} test images.`);
    }
    const predictions = new Int32Array(end - start);
    let lossSum = 0;
    const idx = new Int32Array(Math.min(EVAL_CHUNK, end - start));
    for (let s = start; s < end; s += EVAL_CHUNK) {
      const n = Math.min(EVAL_CHUNK, end - s);
      const indices = idx.subarray(0, n);
      for (let i = 0; i < n; i++) indices[i] = s + i;
      const oneHot = this.fillOneHot(indices, this.test);
      const x = this.fillPixels(this.test, indices);
      tf.tidy(() => {
        const xs = tf.tensor4d(x, [n, ...this.model.inputShape]);
        const logits = this.model.logits(weights, xs);
        argmaxRows(logits.dataSync() as Float32Array, this.classes, predictions.subarray(s - start, s - start + n));
        lossSum += crossEntropySum(logits, tf.tensor2d(oneHot, [n, this.classes])).dataSync()[0];
      });
    }
    return { start, lossSum, predictions };
  }

  dispose(): void {
    this.disposeWeights();
    this.pixels = new Float32Array(0);
    this.oneHot = new Float32Array(0);
    this.disposed = true;
  }

  private disposeWeights(): void {
    if (this.weights) for (const w of this.weights) w.dispose();
    this.weights = null;
  }

  private checkUsable(): void {
    if (this.disposed) throw new Error('ShardComputer used after dispose().');
  }

  private requireWeights(): tf.Tensor[] {
    this.checkUsable();
    if (!this.weights) throw new Error('ShardComputer: call setWeights() before gradient() or evaluate().');
    this.ensureBackend();
    return this.weights;
  }

  /** Tensors go to tfjs's current backend, which is per thread and global: refuse to run on the wrong one. */
  private ensureBackend(): void {
    const current = tf.getBackend();
    const expected = this.backend === 'node' ? 'tensorflow' : this.backend;
    if (current !== expected) {
      throw new BackendError(
        `This thread's tfjs backend is now '${current}', but its ShardComputer was created for '${expected}'. ` +
          `Use one backend per worker thread.`,
      );
    }
  }

  /** Images as float32 NHWC in [0, 1], in a reused buffer (a view of exactly n images). */
  private fillPixels(set: ImageSet, indices: Int32Array): Float32Array {
    const per = this.pixelsPerImage;
    const need = indices.length * per;
    if (this.pixels.length < need) this.pixels = new Float32Array(need);
    const px = this.pixels;
    const images = set.images;
    for (let i = 0; i < indices.length; i++) {
      const src = indices[i] * per;
      const dst = i * per;
      for (let k = 0; k < per; k++) px[dst + k] = BYTE_TO_UNIT[images[src + k]];
    }
    return px.subarray(0, need);
  }

  /**
   * The shard's images: the training set itself, or — when the recipe augments — a small set of the shard's
   * augmented copies (image k = augmented indices[k]), with the order to read them in.
   */
  private shardImages(indices: Int32Array, step: number): { set: ImageSet; order: Int32Array } {
    if (!this.recipe.augment) return { set: this.train, order: indices };
    const { count } = this.train;
    for (let i = 0; i < indices.length; i++) {
      const j = indices[i];
      if (!Number.isInteger(j) || j < 0 || j >= count) {
        throw new RangeError(`Image index ${j} (position ${i}) is outside the ${count} images of the set.`);
      }
    }
    this.augmented = augmentShard(this.recipe.seed, step, this.train.images, this.train.labels, indices, this.augmented);
    if (this.shardOrder.length < indices.length) this.shardOrder = Int32Array.from({ length: indices.length }, (_, k) => k);
    return {
      set: { count: indices.length, images: this.augmented.images, labels: this.augmented.labels },
      order: this.shardOrder.subarray(0, indices.length),
    };
  }

  /**
   * Targets in a reused buffer — one-hot, or (1 − ε)·one-hot + ε/classes with label smoothing ε; also checks
   * every index against the set.
   */
  private fillOneHot(indices: Int32Array, set: ImageSet, smoothing = 0): Float32Array {
    const c = this.classes;
    const need = indices.length * c;
    if (this.oneHot.length < need) this.oneHot = new Float32Array(need);
    const oh = this.oneHot.subarray(0, need);
    const off = smoothing / c;
    oh.fill(off);
    const { count, labels } = set;
    for (let i = 0; i < indices.length; i++) {
      const j = indices[i];
      if (!Number.isInteger(j) || j < 0 || j >= count) {
        throw new RangeError(`Image index ${j} (position ${i}) is outside the ${count} images of the set.`);
      }
      oh[i * c + labels[j]] = 1 - smoothing + off;
    }
    return oh;
  }

  /** Copies a gradient tensor into `out` at `offset`; on wasm straight from the heap, without a temporary. */
  private readInto(t: tf.Tensor, out: Float32Array, offset: number): void {
    if (this.backend === 'wasm') {
      out.set((tf.backend() as unknown as BackendWasm).typedArrayFromHeap(t) as Float32Array, offset);
    } else {
      out.set(t.dataSync() as Float32Array, offset);
    }
  }
}

/** Σ over the batch of −log softmax(logits)[label], with labels one-hot. */
function crossEntropySum(logits: tf.Tensor2D, oneHot: tf.Tensor2D): tf.Scalar {
  return tf.neg(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)))) as tf.Scalar;
}

/** Index of the largest logit of each row (the first on ties, as tf.argMax). */
function argmaxRows(logits: Float32Array, classes: number, out: Int32Array): void {
  for (let i = 0; i < out.length; i++) {
    const row = i * classes;
    let best = 0;
    let bestValue = logits[row];
    for (let c = 1; c < classes; c++) {
      if (logits[row + c] > bestValue) {
        bestValue = logits[row + c];
        best = c;
      }
    }
    out[i] = best;
  }
}

function countCorrect(logits: Float32Array, indices: Int32Array, labels: Uint8Array, classes: number): number {
  const pred = new Int32Array(indices.length);
  argmaxRows(logits, classes, pred);
  let correct = 0;
  for (let i = 0; i < indices.length; i++) if (pred[i] === labels[indices[i]]) correct++;
  return correct;
}

function checkSet(name: string, set: ImageSet, classes: number): void {
  if (!Number.isInteger(set.count) || set.count < 0) throw new DatasetError(`The ${name} set claims ${set.count} images.`);
  if (set.images.length < set.count * IMAGE_BYTES) {
    throw new DatasetError(`The ${name} set holds ${set.images.length} image bytes, too few for ${set.count} images of ${IMAGE_BYTES} bytes.`);
  }
  if (set.labels.length < set.count) {
    throw new DatasetError(`The ${name} set holds ${set.labels.length} labels for ${set.count} images.`);
  }
  for (let i = 0; i < set.count; i++) {
    if (set.labels[i] >= classes) throw new DatasetError(`The ${name} set's label ${i} is ${set.labels[i]}, not a class 0-${classes - 1}.`);
  }
}
