import path from 'node:path';
import type { BackendChoice } from '../compute/backend.ts';
import type { Cifar10Dataset } from '../data/cifar10-dataset.ts';
import type { ModelDefinition } from '../model/model-definition.ts';
import type { WorkerPool } from './worker-pool.ts';
import type { TrainingRecipe } from '../compute/training-recipe.ts';
import { ThreadPool } from './threads/thread-pool.ts';

export interface CreateWorkerPoolInput {
  readonly options: {
    readonly redis?: string;
    readonly workers: number;
    readonly shardTimeoutSeconds: number;
    /** The run's --out folder: a coordinator restarted on the same folder clears its killed predecessor's Redis keys at once. */
    readonly out?: string;
  };
  readonly model: ModelDefinition;
  readonly parameterCount: number;
  readonly dataset: Cifar10Dataset;
  readonly backend: BackendChoice;
  /** Augmentation and label smoothing the workers apply (default: none). */
  readonly recipe?: TrainingRecipe;
  readonly log: (line: string) => void;
}

/** Local threads, or remote workers when a Redis URL is given: the only place that chooses. */
export async function createWorkerPool(input: CreateWorkerPoolInput): Promise<WorkerPool> {
  if (input.options.redis) {
    const { RedisPool } = await import('./redis/redis-pool.ts');
    return RedisPool.create({
      url: input.options.redis, model: input.model.name, parameterCount: input.parameterCount, dataset: input.dataset,
      owner: input.options.out !== undefined ? path.resolve(input.options.out) : undefined,
      backend: input.backend, recipe: input.recipe, shardTimeoutSeconds: input.options.shardTimeoutSeconds, log: input.log,
    });
  }
  return ThreadPool.create({
    model: input.model.name, parameterCount: input.parameterCount, dataset: input.dataset,
    threads: input.options.workers, backend: input.backend, recipe: input.recipe, log: input.log,
    // The coordinator's thread only waits during a step: it computes one of the --workers shares itself
    // (--workers 1 stays one worker thread, as --help says).
    callerComputes: input.options.workers >= 2,
    // The trainer's Optimizer.averageShards rejects NaN and ±Infinity as it sums (see ThreadPoolOptions).
    scanFinite: false,
  });
}
