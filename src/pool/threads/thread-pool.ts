import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { nativeThreadsShareProcess, type BackendChoice, type BackendName } from '../../compute/backend.ts';
import { autoCandidates } from '../../compute/auto-backend.ts';
import { pinNativeThreads } from '../../compute/numerics-identity.ts';
import type { Cifar10Dataset } from '../../data/cifar10-dataset.ts';
import { PLAIN_RECIPE, type TrainingRecipe } from '../../compute/training-recipe.ts';
import { BackendError, ShardResultError, WorkerThreadError } from '../../errors/index.ts';
import type { EvalResult, EvalTask, ShardTask, WorkerPool } from '../worker-pool.ts';
import type { HelloReply, ThreadTask, ThreadWorkerData } from './thread-messages.ts';
import { validateShardResult, validateShardShape } from '../shard-result.ts';
import { ShardComputer } from '../../compute/shard-computer.ts';
import { modelByName } from '../../model/model-registry.ts';
import { PublishedWeights } from './published-weights.ts';
import { ResultBuffers } from '../result-buffers.ts';
import { ChannelClient, type ChannelWait, allocateChannelMemory } from './thread-channel.ts';

export interface ThreadPoolOptions {
  readonly model: string;
  readonly parameterCount: number;
  readonly dataset: Pick<Cifar10Dataset, 'train' | 'test'>;
  /**
   * Threads wanted. On node each is one TensorFlow context with one intra-op thread (../compute/numerics-identity.ts);
   * a tfjs-node binding that cannot share a process (not built by npm run native:install) gets exactly one.
   */
  readonly threads: number;
  readonly backend: BackendChoice;
  /** Augmentation and label smoothing (default: none, the tutorial's recipe). */
  readonly recipe?: TrainingRecipe;
  /** How often a shard whose result fails validation is recomputed before the step gives up. */
  readonly maxAttempts?: number;
  /**
   * Whether every result is scanned for NaN and ±Infinity before it is returned (default true). The coordinator
   * turns it off: the Optimizer's sum rejects a non-finite value anyway (averageShards, in the same pass), and
   * recomputing a local shard would give the same floats. The scan copies the result into WebAssembly memory
   * and reads it: about 0.06 ms per shard on the coordinator's thread, at every step. A remote worker keeps it,
   * so that a bad result of its own fails there instead of travelling to the coordinator.
   */
  readonly scanFinite?: boolean;
  /** Where log lines go (rejected results). */
  readonly log?: (line: string) => void;
  /**
   * The calling thread is one of the `threads` workers (default false): it computes its share of every step's
   * shards (and evaluation chunks) itself, synchronously, while `threads − 1` worker threads compute the rest;
   * with `threads` 1 there are no worker threads at all. For the coordinator, whose thread only waits during a
   * step: on 2 cores, 2 worker threads + a waiting coordinator are 3 threads for 2 cores, and every result
   * crosses threads; this way there are 2, and one result stays put. For a remote worker with one thread: no
   * hop to a thread and back for every job (its event loop then waits for one task's compute at most, far
   * less than a BullMQ lock). Ignored for a tfjs-node binding that only one thread per process may load.
   */
  readonly callerComputes?: boolean;
  /**
   * How long both ends of a thread's channel watch for the other before they sleep (thread-channel.ts). Default
   * 2 ms when every thread (and this one) has a core of its own, else 0: spinning threads would take cores from
   * working ones.
   */
  readonly spinMs?: number;
}

/** A worker thread's channel, and a promise that rejects once the thread has stopped serving it. */
interface ThreadLane {
  readonly channel: ChannelClient;
  readonly gone: Promise<never>;
}

const WORKER_FILE = fileURLToPath(new URL('../../../workers/thread-worker.ts', import.meta.url));

/** The calling thread's own ShardComputer (ThreadPoolOptions.callerComputes) and its view of the published weights. */
interface CallerWorker {
  readonly computer: ShardComputer;
  readonly weights: PublishedWeights;
}

/**
 * WorkerPool on local worker threads (piscina starts them). Weights live in one SharedArrayBuffer that every
 * thread reads; the training images are shared the same way. Each thread serves a channel in shared memory
 * (./thread-channel.ts): a task is its image indices written into the channel, a result the thread's writes
 * into it, copied into a buffer the caller gives back once read (./result-buffers.ts).
 */
export class ThreadPool implements WorkerPool {
  private readonly results: ResultBuffers;
  /** Channels not in use by a call (several calls may overlap: a remote worker's jobs). */
  private readonly idle: ThreadLane[];
  private readonly waiting: { resolve: (lane: ThreadLane) => void; reject: (error: Error) => void }[] = [];
  /** Why the pool cannot compute any more (a thread died); set unless close() stopped the threads. */
  private failure: Error | undefined;
  private closing = false;

  private constructor(
    /** The worker threads; null when the calling thread is the only worker. */
    private readonly piscina: Piscina | null,
    private readonly weights: Float32Array,
    private readonly version: Int32Array,
    readonly backend: BackendName,
    /** What the backend's bytes depend on (../compute/numerics-identity.ts); the same in every thread of the pool. */
    readonly numerics: string,
    readonly threads: number,
    private readonly options: ThreadPoolOptions,
    private readonly caller: CallerWorker | null = null,
    private readonly lanes: readonly ThreadLane[] = [],
    /** The serve tasks, one per thread: they end when close() stops the channels. */
    private readonly serving: readonly Promise<unknown>[] = [],
  ) {
    this.results = new ResultBuffers(options.parameterCount);
    this.idle = [...lanes];
    for (const lane of lanes) {
      lane.gone.catch((error: Error) => {
        if (this.closing) return;
        this.failure ??= error;
        for (const waiter of this.waiting.splice(0)) waiter.reject(this.failure);
      });
    }
  }

  /**
   * Starts the threads on the explicit backend, or for 'auto' on the first of the model's row in
   * ../compute/auto-backend.ts that is available here (fused where the model has it, node where tfjs-node is
   * installed), trying the next when one fails to start. Every thread gets the same explicit backend, so a run
   * never mixes paths.
   */
  static async create(options: ThreadPoolOptions): Promise<ThreadPool> {
    const candidates = options.backend === 'auto' ? autoCandidates(options.model) : [options.backend];
    for (let i = 0; ; i++) {
      try {
        return await ThreadPool.startOn(candidates[i], options);
      } catch (error) {
        if (i + 1 >= candidates.length) throw error;
        (options.log ?? console.warn)(`Backend: ${candidates[i]} did not start (${(error as Error).message}); using ${candidates[i + 1]} instead.`);
      }
    }
  }

  private static async startOn(backend: BackendName, options: ThreadPoolOptions): Promise<ThreadPool> {
    const weights = new SharedArrayBuffer(options.parameterCount * 4);
    const version = new SharedArrayBuffer(4);
    new Int32Array(version)[0] = -1;
    const native = backend === 'node';
    // TensorFlow reads its thread counts from the process environment when it loads: pin them before any thread does.
    if (native) pinNativeThreads();
    // A binding that only one thread per process may load gets one thread, and this thread never loads it.
    const shared = !native || nativeThreadsShareProcess();
    const threads = shared ? Math.max(1, options.threads) : 1;
    const inCaller = shared && options.callerComputes === true;
    const threadCount = inCaller ? threads - 1 : threads;
    const workerData: ThreadWorkerData = {
      model: options.model, backend, allowNative: native, recipe: options.recipe ?? PLAIN_RECIPE, weights, weightsVersion: version,
      train: options.dataset.train, test: options.dataset.test,
    };
    const piscina = threadCount > 0
      ? new Piscina({ filename: WORKER_FILE, minThreads: threadCount, maxThreads: threadCount, idleTimeout: 2 ** 31 - 1, workerData })
      : null;
    try {
      const hello = async (pool: Piscina) => (await pool.run({ kind: 'hello' } satisfies ThreadTask)) as HelloReply;
      const replies = piscina ? await Promise.all(Array.from({ length: threadCount }, () => hello(piscina))) : [];
      let caller: CallerWorker | null = null;
      if (inCaller) {
        const { train, test } = options.dataset;
        const computer = await ShardComputer.create(modelByName(options.model), { train, test }, backend, {
          allowNative: native, recipe: options.recipe ?? PLAIN_RECIPE,
        });
        caller = { computer, weights: new PublishedWeights(new Float32Array(weights), new Int32Array(version), 'This thread') };
        replies.push({ backend: computer.backend, threadId: 0, numerics: computer.numerics });
      }
      const backends = new Set(replies.map((r) => r.backend));
      const numerics = new Set(replies.map((r) => r.numerics));
      if (backends.size !== 1 || numerics.size !== 1) {
        throw new BackendError(`Worker threads started different engines (${[...new Set(replies.map((r) => r.numerics))].join(' | ')}); pass --backend explicitly.`);
      }
      const { lanes, serving } = piscina ? serve(piscina, threadCount, options, spinMsFor(options, threads)) : { lanes: [], serving: [] };
      return new ThreadPool(piscina, new Float32Array(weights), new Int32Array(version), replies[0].backend, replies[0].numerics, threads, options, caller, lanes, serving);
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

  /** Writes task i's result into `into[i]` when given (the channel's copy goes there, or this thread computes into it). */
  async computeGradients(tasks: readonly ShardTask[], _next?: readonly ShardTask[], into?: readonly Float32Array[]): Promise<Float32Array[]> {
    const caller = this.caller;
    return this.inLanes(tasks, (task, lane, wait, i) => this.computeShard(task, into?.[i], { lane, wait }), caller && ((task, i) => this.computeShard(task, into?.[i], null, (out) => {
      caller.weights.loadInto(caller.computer, task.weightsVersion);
      caller.computer.gradient(task.indices, task.step, out);
    })));
  }

  recycle(results: readonly Float32Array[]): void {
    this.results.give(results);
  }

  /**
   * Runs tasks on one lane per worker, each taking the next task when it is free; results in task order. The
   * threads' lanes start first, so their first tasks are posted before this thread's lane (when it has one)
   * computes, synchronously; it lets the others take new tasks between two of its own.
   */
  private async inLanes<T, R>(
    tasks: readonly T[],
    onThread: (task: T, lane: ThreadLane, wait: ChannelWait, index: number) => Promise<R>,
    onCaller: ((task: T, index: number) => Promise<R>) | null,
  ): Promise<R[]> {
    if (this.failure) throw this.failure;
    const results = new Array<R>(tasks.length);
    let next = 0;
    // While this thread's lane has shares left to compute, a thread lane must not spin on its channel.
    let callerBusy = onCaller !== null;
    const mayWatch = () => !callerBusy;
    const threadLane = async () => {
      // Taken at once when one is free, so that the first task is posted before this thread computes.
      let lane = next < tasks.length ? this.idle.pop() : undefined;
      try {
        while (next < tasks.length) {
          lane ??= await this.nextIdleLane();
          if (next >= tasks.length) break;
          const i = next++;
          results[i] = await onThread(tasks[i], lane, { gone: lane.gone, mayWatch }, i);
        }
      } finally {
        if (lane) this.release(lane);
      }
    };
    const callerLane = async (run: (task: T, index: number) => Promise<R>) => {
      try {
        for (let first = true; next < tasks.length; first = false) {
          if (!first) await new Promise((resolve) => setImmediate(resolve));
          if (next >= tasks.length) break;
          const i = next++;
          results[i] = await run(tasks[i], i);
        }
      } finally {
        callerBusy = false;
      }
    };
    const lanes = this.lanes.map(() => threadLane());
    if (onCaller) lanes.push(callerLane(onCaller));
    await Promise.all(lanes);
    return results;
  }

  /** A thread's channel as soon as one is free (calls overlap when a remote worker runs several jobs at once). */
  private nextIdleLane(): Promise<ThreadLane> {
    if (this.failure) return Promise.reject(this.failure);
    const lane = this.idle.pop();
    return lane ? Promise.resolve(lane) : new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  private release(lane: ThreadLane): void {
    if (lane.channel.busy) return; // its thread died in the middle of a task: never used again
    const waiter = this.waiting.shift();
    if (waiter) waiter.resolve(lane);
    else this.idle.push(lane);
  }

  /**
   * One shard on a worker thread, or with `inCaller` on this one, written into `into` when given, else into a
   * result buffer of the pool's; a result that fails validation is recomputed.
   */
  private async computeShard(
    task: ShardTask,
    into: Float32Array | undefined,
    onThread: { readonly lane: ThreadLane; readonly wait: ChannelWait } | null,
    inCaller?: (out: Float32Array) => void,
  ): Promise<Float32Array> {
    const attempts = this.options.maxAttempts ?? 3;
    const validate = this.options.scanFinite === false ? validateShardShape : validateShardResult;
    const out = into ?? this.results.take();
    try {
      for (let attempt = 1; ; attempt++) {
        if (inCaller) {
          inCaller(out);
        } else if (onThread) {
          onThread.lane.channel.postGradient(task.step, task.weightsVersion, task.indices);
          await onThread.lane.channel.gradientInto(out, onThread.wait);
        }
        try {
          return validate(out, this.options.parameterCount, task.indices.length, `a local worker thread (step ${task.step}, shard ${task.shard})`);
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
    return this.inLanes(tasks, async (task, lane, wait) => {
      lane.channel.postEvaluate(task.weightsVersion, task.start, task.end, task.tta ?? false);
      return lane.channel.evaluation(task.start, task.end, wait);
    }, caller && (async (task) => {
      caller.weights.loadInto(caller.computer, task.weightsVersion);
      return caller.computer.evaluate(task.start, task.end, task.tta);
    }));
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const lane of this.lanes) lane.channel.stop();
    await Promise.allSettled(this.serving);
    this.caller?.computer.dispose();
    await this.piscina?.destroy();
  }
}

/** The spin of a pool's channels: the option, else 2 ms while every thread of the pool has a core of its own. */
function spinMsFor(options: ThreadPoolOptions, threads: number): number {
  return options.spinMs ?? (threads <= os.availableParallelism() ? 2 : 0);
}

/** Gives each of the `count` threads of `piscina` a channel to serve (one long task each). */
function serve(piscina: Piscina, count: number, options: ThreadPoolOptions, spinMs: number): { lanes: ThreadLane[]; serving: Promise<unknown>[] } {
  const { parameterCount, dataset } = options;
  const lanes: ThreadLane[] = [];
  const serving: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const channel = new ChannelClient(allocateChannelMemory(parameterCount, dataset.train.count, dataset.test.count), spinMs);
    const task = piscina.run({ kind: 'serve', memory: channel.memory, spinMs } satisfies ThreadTask);
    const gone = task.then(
      () => Promise.reject(new Error('A worker thread stopped serving its tasks (the pool is closing).')),
      (error: unknown) => Promise.reject(new WorkerThreadError(
        `A local worker thread stopped (${error instanceof Error ? error.message : String(error)}), so this run cannot go on. ` +
          'Its last checkpoint is kept: continue with --resume (with fewer --workers if memory ran out).',
      )),
    );
    gone.catch(() => undefined); // raced by every wait on the channel; nobody else needs to hear of it
    lanes.push({ channel, gone });
    serving.push(task.catch(() => undefined));
  }
  return { lanes, serving };
}
