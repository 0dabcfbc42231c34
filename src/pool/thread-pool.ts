import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { BackendChoice, BackendName } from '../compute/backend.ts';
import type { Cifar10Dataset } from '../data/cifar10-dataset.ts';
import { PLAIN_RECIPE, type TrainingRecipe } from '../compute/training-recipe.ts';
import { BackendError, ShardResultError } from '../errors/index.ts';
import type { EvalResult, EvalTask, ShardTask, WorkerPool } from './worker-pool.ts';
import type { HelloReply, ThreadTask, ThreadWorkerData } from './thread-messages.ts';
import { validateShardResult } from './shard-result.ts';
import { hasFusedImplementation } from '../compute/fused/fused-tutorial-cnn.ts';

export interface ThreadPoolOptions {
  readonly model: string;
  readonly parameterCount: number;
  readonly dataset: Pick<Cifar10Dataset, 'train' | 'test'>;
  /** Threads wanted; a native (tfjs-node) backend always gets exactly one, since it threads itself. */
  readonly threads: number;
  readonly backend: BackendChoice;
  /** Augmentation and label smoothing (default: none, the tutorial's recipe). */
  readonly recipe?: TrainingRecipe;
  /** How often a shard whose result fails validation is recomputed before the step gives up. */
  readonly maxAttempts?: number;
  /** Where log lines go (rejected results). */
  readonly log?: (line: string) => void;
}

const WORKER_FILE = fileURLToPath(new URL('../../workers/thread-worker.ts', import.meta.url));

/**
 * WorkerPool on local worker threads (piscina). Weights live in one SharedArrayBuffer that every thread reads;
 * the training images are shared the same way, so a task carries only image indices and a result is one
 * transferred Float32Array.
 */
export class ThreadPool implements WorkerPool {
  private constructor(
    private readonly piscina: Piscina,
    private readonly weights: Float32Array,
    private readonly version: Int32Array,
    readonly backend: BackendName,
    readonly threads: number,
    private readonly options: ThreadPoolOptions,
  ) {}

  static async create(options: ThreadPoolOptions): Promise<ThreadPool> {
    const weights = new SharedArrayBuffer(options.parameterCount * 4);
    const version = new SharedArrayBuffer(4);
    new Int32Array(version)[0] = -1;
    const start = (threads: number, backend: BackendChoice, allowNative: boolean) => {
      const workerData: ThreadWorkerData = {
        model: options.model, backend, allowNative, recipe: options.recipe ?? PLAIN_RECIPE, weights, weightsVersion: version,
        train: options.dataset.train, test: options.dataset.test,
      };
      return new Piscina({ filename: WORKER_FILE, minThreads: threads, maxThreads: threads, idleTimeout: 2 ** 31 - 1, workerData });
    };
    const hello = async (pool: Piscina) => (await pool.run({ kind: 'hello' } satisfies ThreadTask)) as HelloReply;

    // tfjs-node may only load in one thread of a process: when it might be wanted, probe with a single thread.
    const mayBeNative = options.backend === 'node' || (options.backend === 'auto' && nativeBackendInstalled());
    if (mayBeNative) {
      const probe = start(1, options.backend, true);
      const reply = await hello(probe).catch(async (error: unknown) => {
        await probe.destroy();
        throw error;
      });
      if (reply.backend === 'node') return new ThreadPool(probe, new Float32Array(weights), new Int32Array(version), 'node', 1, options);
      await probe.destroy();
    }
    // Every thread gets the same explicit backend, so a run never mixes paths.
    const backend: BackendChoice = options.backend === 'auto' ? (hasFusedImplementation(options.model) ? 'fused' : 'wasm') : options.backend;
    const threads = Math.max(1, options.threads);
    const piscina = start(threads, backend, false);
    const replies = await Promise.all(Array.from({ length: threads }, () => hello(piscina))).catch(async (error: unknown) => {
      await piscina.destroy();
      throw error;
    });
    const backends = new Set(replies.map((r) => r.backend));
    if (backends.size !== 1) {
      await piscina.destroy();
      throw new BackendError(`Worker threads started on different backends (${[...backends].join(', ')}); pass --backend explicitly.`);
    }
    return new ThreadPool(piscina, new Float32Array(weights), new Int32Array(version), replies[0].backend, threads, options);
  }

  describe(): string {
    return `${this.threads} local worker thread${this.threads === 1 ? '' : 's'} (${this.backend})`;
  }

  async publishWeights(version: number, weights: Float32Array): Promise<void> {
    this.weights.set(weights);
    Atomics.store(this.version, 0, version);
  }

  async computeGradients(tasks: readonly ShardTask[]): Promise<Float32Array[]> {
    return Promise.all(tasks.map((task) => this.computeShard(task)));
  }

  private async computeShard(task: ShardTask): Promise<Float32Array> {
    const attempts = this.options.maxAttempts ?? 3;
    for (let attempt = 1; ; attempt++) {
      const message: ThreadTask = { kind: 'gradient', step: task.step, weightsVersion: task.weightsVersion, indices: task.indices };
      const result: unknown = await this.piscina.run(message);
      try {
        return validateShardResult(result, this.options.parameterCount, task.indices.length, `a local worker thread (step ${task.step}, shard ${task.shard})`);
      } catch (error) {
        if (!(error instanceof ShardResultError) || attempt >= attempts) throw error;
        this.options.log?.(`${error.message} Recomputing (attempt ${attempt + 1} of ${attempts}).`);
      }
    }
  }

  async evaluate(tasks: readonly EvalTask[]): Promise<EvalResult[]> {
    return Promise.all(
      tasks.map(async (task) => {
        const message: ThreadTask = { kind: 'evaluate', weightsVersion: task.weightsVersion, start: task.start, end: task.end };
        return (await this.piscina.run(message)) as EvalResult;
      }),
    );
  }

  async close(): Promise<void> {
    await this.piscina.destroy();
  }
}

/** True when @tensorflow/tfjs-node is installed (without loading it: loading it here would claim the process). */
function nativeBackendInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
}
