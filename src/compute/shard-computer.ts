import type { ModelDefinition } from '../model/model-definition.ts';
import { parameterCount } from '../model/parameter-vector.ts';
import { IMAGE_BYTES, type ImageSet } from '../data/cifar10-dataset.ts';
import { checkImageIndices } from '../data/image-batch.ts';
import type { EvalResult } from '../pool/worker-pool.ts';
import { shardResultLength } from '../pool/shard-result.ts';
import { BackendError, DatasetError } from '../errors/index.ts';
import { initBackend, numericsIdentity, type BackendChoice, type BackendName } from './backend.ts';
import { augmentShard } from '../data/augmentation.ts';
import { flipTranslateShard } from '../data/flip-translate-augmentation.ts';
import { epochOfStep } from '../train/batch-plan.ts';
import { hasFusedImplementation } from './fused/fused-tutorial-cnn.ts';
import { PLAIN_RECIPE, type TrainingRecipe } from './training-recipe.ts';
import type { NetworkEngine } from './engines/network-engine.ts';
import { FusedEngine } from './engines/fused-engine.ts';
import { TfjsEngine } from './engines/tfjs-engine.ts';
import { TTA_VIEWS, combineTtaLogits, ttaViews, type TtaLevel } from '../eval/test-time-augmentation.ts';

/** airbench's default level: the image, its mirror, and the two 1-px translations of both. */
const TTA_LEVEL: TtaLevel = 2;

/**
 * The worker side of one training step: given the published weights and a shard's image indices, the
 * gradient of the summed cross-entropy, the loss sum and the number of correct predictions, as the flat
 * Float32Array that crosses to the coordinator (see ../pool/shard-result.ts). Also classifies test ranges.
 *
 * This is the data side — which images, augmented how, checked against the sets; the network's maths is a
 * NetworkEngine chosen at create() (./engines/: the fused module, or the model on a tfjs backend). One
 * ShardComputer per thread. Results are a pure function of (weights, indices, step): the same inputs give
 * byte-identical output on every call.
 */
export class ShardComputer {
  readonly parameterCount: number;
  private augmented: { images: Uint8Array; labels: Uint8Array } | undefined;
  private shardOrder = new Int32Array(0);
  private loaded = false;
  private disposed = false;

  private constructor(
    private readonly engine: NetworkEngine,
    private readonly model: ModelDefinition,
    private readonly train: ImageSet,
    private readonly test: ImageSet,
    private readonly recipe: TrainingRecipe,
  ) {
    this.parameterCount = parameterCount(model);
  }

  get backend(): BackendName {
    return this.engine.backend;
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
    const engine = name === 'fused' ? new FusedEngine(recipe.labelSmoothing) : new TfjsEngine(name, model, recipe.labelSmoothing, recipe.seed);
    return new ShardComputer(engine, model, sets.train, sets.test, recipe);
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
    this.engine.setWeights(weights);
    this.loaded = true;
  }

  /**
   * Gradient of Σ cross-entropy over the training images `indices` (in flat parameter order), then the loss
   * sum and the number of correct predictions: parameterCount + 2 floats, written into `out` when given (every
   * position is written, so it may hold an earlier result), else into a fresh Float32Array. `step` seeds the
   * augmentation (when the recipe has it) and dropout (when the model has it), so the same shard gives the same
   * result anywhere.
   *
   * The network runs in training mode. A batch-norm running statistic is not trained: at its positions the
   * result holds n × the shard's batch value of that statistic (n = the shard's images), so that the
   * coordinator's sum over shards ÷ batch size is the image-weighted mean (see src/train/batch-norm-state.ts).
   */
  gradient(indices: Int32Array, step = 0, out?: Float32Array): Float32Array {
    this.checkReady();
    const length = shardResultLength(this.parameterCount);
    if (out && out.length !== length) throw new RangeError(`gradient() writes ${length} floats, but its output array holds ${out.length}.`);
    if (indices.length === 0) throw new RangeError('gradient() needs at least one image index.');
    checkImageIndices(indices, this.train.count);
    const result = out ?? new Float32Array(length);
    this.engine.gradient({ ...this.shardImages(indices, step), imageIds: indices, step }, result);
    return result;
  }

  /**
   * Classifies test images [start, end); lossSum is Σ cross-entropy. With `tta`, each image by the combined
   * logits of its six test-time augmentation views (src/eval/test-time-augmentation.ts).
   */
  evaluate(start: number, end: number, tta = false): EvalResult {
    this.checkReady();
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > this.test.count || start > end) {
      throw new RangeError(`evaluate(${start}, ${end}) is outside the ${this.test.count} test images.`);
    }
    if (!tta) return { start, ...this.engine.evaluate(this.test, start, end) };
    const logitsOf = this.engine.logits?.bind(this.engine);
    if (!logitsOf) throw new BackendError(`Test-time augmentation needs a tfjs backend; backend '${this.backend}' classifies without it.`);
    const n = end - start;
    const views = ttaViews(this.test.images.subarray(start * IMAGE_BYTES, end * IMAGE_BYTES), n, TTA_LEVEL);
    const viewSet: ImageSet = { count: TTA_VIEWS[TTA_LEVEL] * n, images: views, labels: new Uint8Array(0) };
    const combined = combineTtaLogits(logitsOf(viewSet, 0, viewSet.count), n, this.model.classes, TTA_LEVEL);
    return { start, ...classify(combined, this.test.labels.subarray(start, end), this.model.classes) };
  }

  dispose(): void {
    this.engine.dispose();
    this.disposed = true;
  }

  private checkUsable(): void {
    if (this.disposed) throw new Error('ShardComputer used after dispose().');
  }

  private checkReady(): void {
    this.checkUsable();
    if (!this.loaded) throw new Error('ShardComputer: call setWeights() before gradient() or evaluate().');
  }

  /**
   * The shard's images: the training set itself, or — when the recipe augments — a small set of the shard's
   * augmented copies (image k = augmented indices[k]), with the order to read them in.
   */
  private shardImages(indices: Int32Array, step: number): { set: ImageSet; order: Int32Array } {
    const { augmentation, seed, stepsPerEpoch } = this.recipe;
    if (augmentation === 'none') return { set: this.train, order: indices };
    const { images, labels } = this.train;
    this.augmented = augmentation === 'crop-flip'
      ? augmentShard(seed, step, images, labels, indices, this.augmented)
      : flipTranslateShard(seed, epochOfStep(step, stepsPerEpoch), images, labels, indices, this.augmented);
    if (this.shardOrder.length < indices.length) this.shardOrder = Int32Array.from({ length: indices.length }, (_, k) => k);
    return {
      set: { count: indices.length, images: this.augmented.images, labels: this.augmented.labels },
      order: this.shardOrder.subarray(0, indices.length),
    };
  }
}

/** Predicted classes (the first largest logit) and Σ cross-entropy (float64 log-sum-exp) of logits [n, classes]. */
function classify(logits: Float32Array, labels: Uint8Array, classes: number): { lossSum: number; predictions: Int32Array } {
  const n = labels.length;
  const predictions = new Int32Array(n);
  let lossSum = 0;
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * classes, (i + 1) * classes);
    let best = 0;
    for (let c = 1; c < classes; c++) if (row[c] > row[best]) best = c;
    predictions[i] = best;
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(row[c] - row[best]);
    lossSum += Math.log(sum) + row[best] - row[labels[i]];
  }
  return { lossSum, predictions };
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
