import type { BackendChoice, BackendName } from '../../compute/backend.ts';
import type { ImageSet } from '../../data/cifar10-dataset.ts';
import type { TrainingRecipe } from '../../compute/training-recipe.ts';
import type { ChannelMemory } from './thread-channel.ts';

/**
 * The vocabulary shared by the two sides of the thread boundary: ThreadPool (./thread-pool.ts, coordinator
 * side) and workers/thread-worker.ts (thread side).
 */
export interface ThreadWorkerData {
  readonly model: string;
  readonly backend: BackendChoice;
  /** Whether this thread may load @tensorflow/tfjs-node. */
  readonly allowNative: boolean;
  /** Augmentation and label smoothing of the run. */
  readonly recipe: TrainingRecipe;
  /** parameterCount float32s: the current weights, written by the coordinator between steps. */
  readonly weights: SharedArrayBuffer;
  /** One int32: the version of the weights in `weights`, stored with Atomics after they are written. */
  readonly weightsVersion: SharedArrayBuffer;
  readonly train: ImageSet;
  readonly test: ImageSet;
}

export type ThreadTask =
  | { readonly kind: 'hello' }
  /** Serve this channel (thread-channel.ts) until the pool stops it: every gradient and evaluation goes through it. */
  | { readonly kind: 'serve'; readonly memory: ChannelMemory; readonly spinMs: number };

export interface HelloReply {
  readonly backend: BackendName;
  readonly threadId: number;
  /** The thread's engine's numerics identity (../compute/numerics-identity.ts). */
  readonly numerics: string;
}
