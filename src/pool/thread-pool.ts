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
import { ShardComputer } from '../compute/shard-computer.ts';
import { modelByName } from '../model/model-registry.ts';
import { PublishedWeights } from './published-weights.ts';
import { ResultBuffers } from './result-buffers.ts';

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
  /**
   * The calling thread is one of the `threads` workers (default false): it computes its share of every step's
   * shards (and evaluation chunks) itself, synchronously, while `threads − 1` worker threads compute the rest;
   * with `threads` 1 there are no worker threads at all. For the coordinator, whose thread only waits during a
   * step: on 2 cores, 2 worker threads + a waiting coordinator are 3 threads for 2 cores, and every result
   * crosses threads; this way there are 2, and one result stays put. For a remote worker with one thread: no
   * hop to a thread and back for every job (its event loop then waits for one task's compute at most, far
   * less than a BullMQ lock). Ignored for tfjs-node (one thread per process).
   */
  readonly callerComputes?: boolean;
}

const WORKER_FILE = fileURLToPath(new URL('../../workers/thread-worker.ts', import.meta.url));

/** The calling thread's own ShardComputer (ThreadPoolOptions.callerComputes) and its view of the published weights. */
interface CallerWorker {
  readonly computer: ShardComputer;
  readonly weights: PublishedWeights;
}

/**
 * WorkerPool on local worker threads (piscina). Weights live in one SharedArrayBuffer that every thread reads;
 * the training images are shared the same way, so a task carries only image indices, and the thread writes its
 * result into a shared buffer the pool hands it (./result-buffers.ts, reused once the caller recycles it).
 */
export class ThreadPool implements WorkerPool {
  private readonly results: ResultBuffers;

  private constructor(
    /** The worker threads; null when the calling thread is the only worker. */
    private readonly piscina: Piscina | null,
    private readonly weights: Float32Array,
    private readonly version: Int32Array,
    readonly backend: BackendName,
    readonly threads: number,
    private readonly options: ThreadPoolOptions,
    private readonly caller: CallerWorker | null = null,
  ) {
    this.results = new ResultBuffers(options.parameterCount, true);
  }

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
    const inCaller = options.callerComputes === true;
    const threadCount = inCaller ? threads - 1 : threads;
    const piscina = threadCount > 0 ? start(threadCount, backend, false) : null;
    try {
      const replies = piscina ? await Promise.all(Array.from({ length: threadCount }, () => hello(piscina))) : [];
      let caller: CallerWorker | null = null;
      if (inCaller) {
        const { train, test } = options.dataset;
        const computer = await ShardComputer.create(modelByName(options.model), { train, test }, backend, {
          allowNative: false, recipe: options.recipe ?? PLAIN_RECIPE,
        });
        caller = { computer, weights: new PublishedWeights(new Float32Array(weights), new Int32Array(version), 'This thread') };
        replies.push({ backend: computer.backend, threadId: 0 });
      }
      const backends = new Set(replies.map((r) => r.backend));
      if (backends.size !== 1) {
        throw new BackendError(`Worker threads started on different backends (${[...backends].join(', ')}); pass --backend explicitly.`);
      }
      return new ThreadPool(piscina, new Float32Array(weights), new Int32Array(version), replies[0].backend, threads, options, caller);
    } catch (error) {
      await piscina?.destroy();
      throw error;
    }
  }

  describe(): string {
    if (this.caller && this.threads === 1) return `1 local worker: this thread (${this.backend})`;
    if (this.caller) return `${this.threads} local workers: this thread + ${this.threads - 1} worker thread${this.threads === 2 ? '' : 's'} (${this.backend})`;
    return `${this.threads} local worker thread${this.threads === 1 ? '' : 's'} (${this.backend})`;
  }

  async publishWeights(version: number, weights: Float32Array): Promise<void> {
    this.weights.set(weights);
    Atomics.store(this.version, 0, version);
  }

  async computeGradients(tasks: readonly ShardTask[]): Promise<Float32Array[]> {
    const caller = this.caller;
    return this.inLanes(tasks, (task) => this.computeShard(task), caller && ((task) => this.computeShard(task, (out) => {
      caller.weights.loadInto(caller.computer, task.weightsVersion);
      caller.computer.gradient(task.indices, task.step, out);
    })));
  }

  recycle(results: readonly Float32Array[]): void {
    this.results.give(results);
  }

  /**
   * Runs tasks on one lane per worker, each taking the next task when it is free; results in task order. The
   * threads' lanes start first, so their first tasks are on their way before this thread's lane (when it has
   * one) computes, synchronously; it lets the others pick up new tasks between two of its own.
   */
  private async inLanes<T, R>(tasks: readonly T[], onThread: (task: T) => Promise<R>, onCaller: ((task: T) => Promise<R>) | null): Promise<R[]> {
    const results = new Array<R>(tasks.length);
    let next = 0;
    const lane = async (run: (task: T) => Promise<R>, yieldBetween: boolean) => {
      for (let first = true; next < tasks.length; first = false) {
        if (yieldBetween && !first) await new Promise((resolve) => setImmediate(resolve));
        if (next >= tasks.length) break;
        const i = next++;
        results[i] = await run(tasks[i]);
      }
    };
    const lanes = Array.from({ length: this.threads - (onCaller ? 1 : 0) }, () => lane(onThread, false));
    if (onCaller) lanes.push(lane(onCaller, true));
    await Promise.all(lanes);
    return results;
  }

  /**
   * One shard on a worker thread, or with `inCaller` on this one, written into a result buffer of the pool's; a
   * result that fails validation is recomputed.
   */
  private async computeShard(task: ShardTask, inCaller?: (out: Float32Array) => void): Promise<Float32Array> {
    const attempts = this.options.maxAttempts ?? 3;
    const out = this.results.take();
    try {
      for (let attempt = 1; ; attempt++) {
        if (inCaller) inCaller(out);
        else await this.onThread({ kind: 'gradient', step: task.step, weightsVersion: task.weightsVersion, indices: task.indices, out });
        try {
          return validateShardResult(out, this.options.parameterCount, task.indices.length, `a local worker thread (step ${task.step}, shard ${task.shard})`);
        } catch (error) {
          if (!(error instanceof ShardResultError) || attempt >= attempts) throw error;
          this.options.log?.(`${error.message} Recomputing (attempt ${attempt + 1} of ${attempts}).`);
        }
      }
    } catch (error) {
      this.results.give([out]);
      throw error;
    }
  }

  async evaluate(tasks: readonly EvalTask[]): Promise<EvalResult[]> {
    const caller = this.caller;
    return this.inLanes(tasks, async (task) => {
      const message: ThreadTask = { kind: 'evaluate', weightsVersion: task.weightsVersion, start: task.start, end: task.end };
      return (await this.onThread(message)) as EvalResult;
    }, caller && (async (task) => {
      caller.weights.loadInto(caller.computer, task.weightsVersion);
      return caller.computer.evaluate(task.start, task.end);
    }));
  }

  /** Runs a task on a worker thread (inLanes gives thread lanes only when there are threads). */
  private onThread(message: ThreadTask): Promise<unknown> {
    if (!this.piscina) throw new Error('ThreadPool: a task for a worker thread, but this pool has none');
    return this.piscina.run(message);
  }

  async close(): Promise<void> {
    this.caller?.computer.dispose();
    await this.piscina?.destroy();
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
