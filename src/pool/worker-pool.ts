import type { BackendName } from '../compute/backend.ts';

/**
 * The one interface the training loop talks to: "a pool of workers that compute shard gradients".
 * Implementations: ThreadPool (piscina worker threads, ./thread-pool.ts) and RedisPool (BullMQ jobs served by
 * `npm run worker` processes, ./redis-pool.ts). The loop never knows which one it has.
 *
 * Contract, for determinism: a shard's result depends only on (weights version, shard's image indices), never on
 * which worker computed it; implementations return results in shard order and never hand back a result that
 * failed validation (see ./shard-result.ts) — they recompute that shard instead.
 */
export interface ShardTask {
  /** Global step number (0-based), for logs and to reject late results. */
  readonly step: number;
  /** Position of this shard within the step's batch. */
  readonly shard: number;
  /** The weights the shard must be computed with (published by publishWeights). */
  readonly weightsVersion: number;
  /** Indices of the shard's training images, in batch order. */
  readonly indices: Int32Array;
}

/** A contiguous range of test images to classify. */
export interface EvalTask {
  readonly weightsVersion: number;
  readonly start: number;
  readonly end: number;
  /** Classify with test-time augmentation (airbench's 6 views; a tfjs backend). Default false. */
  readonly tta?: boolean;
}

/** Predictions for one EvalTask. */
export interface EvalResult {
  readonly start: number;
  /** Sum of the cross-entropy losses of the range's images. */
  readonly lossSum: number;
  /** Predicted class of each image start..end-1. */
  readonly predictions: Int32Array;
}

export interface WorkerPool {
  /** The backend every shard is computed with (part of the run's settings: backends round differently). */
  readonly backend: BackendName;
  /**
   * What the backend's bytes depend on beyond the inputs (../compute/numerics-identity.ts): a constant for wasm,
   * fused and cpu, the native engine's TensorFlow version, threads, oneDNN setting and CPU for node. Part of the
   * run's settings.
   */
  readonly numerics: string;
  /** One line for the start-up banner, e.g. "2 local worker threads (wasm)". */
  describe(): string;
  /** Makes `weights` visible to every worker as version `version` (versions only grow). */
  publishWeights(version: number, weights: Float32Array): Promise<void>;
  /**
   * Computes every shard of one step. Resolves with one flat result per task, in task order:
   * [summed gradient (parameterCount floats), loss sum, correct predictions] — see ./shard-result.ts.
   * `next`, when the caller knows it, is the next step's tasks (whose weights version is not published yet): a
   * pool may hand them to its workers ahead, to start the moment their weights are out. The next call need not
   * bring the same tasks; anything handed out ahead for it is then dropped.
   * `into`, when given, is one array per task (parameterCount + 2 floats each) that the pool may write task i's
   * result into and resolve with as result i, sparing the caller a copy (the trainer passes the Optimizer's
   * resultSlots); a pool may as well ignore it and resolve with arrays of its own.
   */
  computeGradients(tasks: readonly ShardTask[], next?: readonly ShardTask[], into?: readonly Float32Array[]): Promise<Float32Array[]>;
  /**
   * Gives results of computeGradients back once the caller has read them: the pool may write later results into
   * their memory (ThreadPool does, to allocate nothing per step), so they must not be read afterwards. Optional
   * for the caller: results never recycled stay valid and are garbage-collected as usual.
   */
  recycle(results: readonly Float32Array[]): void;
  /** Classifies test-image ranges with published weights; results in task order. */
  evaluate(tasks: readonly EvalTask[]): Promise<EvalResult[]>;
  /** Stops the workers and releases everything the pool holds (threads, Redis keys and connections). */
  close(): Promise<void>;
}
