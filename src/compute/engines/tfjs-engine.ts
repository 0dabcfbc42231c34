import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { ImageSet } from '../../data/cifar10-dataset.ts';
import { fillImageBatch, fillImageRange } from '../../data/image-batch.ts';
import { BackendError } from '../../errors/index.ts';
import type { ForwardContext, ModelDefinition } from '../../model/model-definition.ts';
import { isTrainable, parameterSlices, type ParameterSlice } from '../../model/parameter-vector.ts';
import type { BackendName } from '../backend.ts';
import type { Classification, NetworkEngine, TrainingBatch } from './network-engine.ts';

/** Largest number of images pushed through the network at once by evaluate(). */
export const TFJS_EVAL_CHUNK = 500;

/**
 * Any ModelDefinition on a tfjs backend (wasm with the project's kernels, tfjs-node, or cpu): the forward pass
 * is the model's own logits(), the gradient tfjs's autodiff of Σ cross-entropy. One engine per thread (tfjs's
 * backend is per thread and global).
 */
export class TfjsEngine implements NetworkEngine {
  private readonly slices: readonly ParameterSlice[];
  /** Positions in `slices` of the trainable tensors (all of them unless the model has running statistics). */
  private readonly trainable: readonly number[];
  /** How many of `slices` are batch norm's running statistics, which a shard reports n × its batch value for. */
  private readonly statistics: number;
  private readonly parameterCount: number;
  private readonly classes: number;
  private weights: tf.Tensor[] | null = null;
  /** Reused input buffers, grown to the largest batch seen. */
  private pixels = new Float32Array(0);
  private oneHot = new Float32Array(0);

  constructor(
    readonly backend: Exclude<BackendName, 'fused'>,
    private readonly model: ModelDefinition,
    private readonly labelSmoothing: number,
    /** The run's seed, which seeds dropout masks with the step and the images. */
    private readonly seed: number,
  ) {
    this.slices = parameterSlices(model);
    this.trainable = this.slices.flatMap((s, i) => (isTrainable(s.spec) ? [i] : []));
    this.statistics = this.slices.length - this.trainable.length;
    this.parameterCount = this.slices.reduce((n, s) => n + s.size, 0);
    this.classes = model.classes;
  }

  setWeights(weights: Float32Array): void {
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

  gradient(batch: TrainingBatch, result: Float32Array): void {
    const weights = this.requireWeights();
    const { set, order } = batch;
    const n = order.length;
    const P = this.parameterCount;
    const oneHot = this.fillOneHot(set.labels, order, this.labelSmoothing);
    const x = this.fillPixels(set, order);
    let correct = 0;
    let reported = 0;
    const context: ForwardContext = {
      training: true,
      dropout: { seed: this.seed, step: batch.step, images: batch.imageIds },
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
        correct = countCorrect(logits.dataSync() as Float32Array, order, set.labels, this.classes);
        return crossEntropySum(logits, ys);
      })(this.trainable.map((slot) => weights[slot]));
      for (let k = 0; k < grads.length; k++) this.readInto(grads[k], result, this.slices[this.trainable[k]].offset);
      result[P] = value.dataSync()[0];
    });
    if (reported !== this.statistics) {
      throw new Error(`Model '${this.model.name}' reported ${reported} batch statistics in training mode, expected ${this.statistics}.`);
    }
    result[P + 1] = correct;
  }

  evaluate(set: ImageSet, start: number, end: number): Classification {
    const weights = this.requireWeights();
    const predictions = new Int32Array(end - start);
    let lossSum = 0;
    const order = new Int32Array(Math.min(TFJS_EVAL_CHUNK, end - start));
    for (let s = start; s < end; s += TFJS_EVAL_CHUNK) {
      const n = Math.min(TFJS_EVAL_CHUNK, end - s);
      for (let i = 0; i < n; i++) order[i] = s + i;
      const oneHot = this.fillOneHot(set.labels, order.subarray(0, n));
      const x = fillImageRange(set, s, s + n, this.pixelBuffer(n));
      tf.tidy(() => {
        const xs = tf.tensor4d(x, [n, ...this.model.inputShape]);
        const logits = this.model.logits(weights, xs);
        argmaxRows(logits.dataSync() as Float32Array, this.classes, predictions.subarray(s - start, s - start + n));
        lossSum += crossEntropySum(logits, tf.tensor2d(oneHot, [n, this.classes])).dataSync()[0];
      });
    }
    return { lossSum, predictions };
  }

  logits(set: ImageSet, start: number, end: number): Float32Array {
    const weights = this.requireWeights();
    const out = new Float32Array((end - start) * this.classes);
    for (let s = start; s < end; s += TFJS_EVAL_CHUNK) {
      const n = Math.min(TFJS_EVAL_CHUNK, end - s);
      const x = fillImageRange(set, s, s + n, this.pixelBuffer(n));
      tf.tidy(() => {
        const logits = this.model.logits(weights, tf.tensor4d(x, [n, ...this.model.inputShape]));
        out.set(logits.dataSync() as Float32Array, (s - start) * this.classes);
      });
    }
    return out;
  }

  dispose(): void {
    this.disposeWeights();
    this.pixels = new Float32Array(0);
    this.oneHot = new Float32Array(0);
  }

  private disposeWeights(): void {
    if (this.weights) for (const w of this.weights) w.dispose();
    this.weights = null;
  }

  private requireWeights(): tf.Tensor[] {
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

  private pixelBuffer(images: number): Float32Array {
    const need = images * this.model.inputShape[0] * this.model.inputShape[1] * this.model.inputShape[2];
    if (this.pixels.length < need) this.pixels = new Float32Array(need);
    return this.pixels;
  }

  /** Images as float32 NHWC in [0, 1], in a reused buffer (a view of exactly n images). */
  private fillPixels(set: ImageSet, order: Int32Array): Float32Array {
    return fillImageBatch(set, order, this.pixelBuffer(order.length));
  }

  /** Targets in a reused buffer: one-hot, or (1 − ε)·one-hot + ε/classes with label smoothing ε. */
  private fillOneHot(labels: Uint8Array, order: Int32Array, smoothing = 0): Float32Array {
    const c = this.classes;
    const need = order.length * c;
    if (this.oneHot.length < need) this.oneHot = new Float32Array(need);
    const oh = this.oneHot.subarray(0, need);
    const off = smoothing / c;
    oh.fill(off);
    for (let i = 0; i < order.length; i++) oh[i * c + labels[order[i]]] = 1 - smoothing + off;
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
