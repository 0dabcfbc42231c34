/**
 * How bare compute scales on this machine, measured in the same minutes as the trainer: N threads that compute
 * the shards of each batch with nothing else to do (no weights to publish, no results to gather, no Adam),
 * against one thread computing whole batches alone. On a 2-core VM the two threads share caches, the memory bus
 * and whatever the host gives their vCPUs, so N threads are not N times one; how far from N they are is the
 * machine's part of the gap between the trainer's "N workers / 1 worker" and N. It is context, not a bound: the
 * trainer's ratio can come out above it at small batches, where the 1-worker configuration has per-step costs
 * of its own (the hand-off to its thread) that are not compute.
 *
 * Phases alternate: one thread alone on batches of `batch` images, then all N at once on shards of it (sizes as
 * cutIntoShards gives them) in rounds that end when every thread has finished its shard, as a synchronous step
 * does; `pairs` times, the order flipping every pair so that the machine's drift does not favour either side.
 * Each pair gives one ratio: images/s of N threads together / images/s of one alone.
 * Threads: ./compute-scaling-thread.ts, each with its own ShardComputer on the shared training images.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { BackendChoice } from '../src/compute/backend.ts';
import type { ImageSet } from '../src/data/cifar10-dataset.ts';
import { BenchError } from './bench-error.ts';
import { ScalingControl, type ScalingThreadData, type ThreadReport } from './compute-scaling-control.ts';

export interface ComputeScalingOptions {
  readonly train: ImageSet;
  readonly model: string;
  readonly weights: Float32Array;
  readonly backend: BackendChoice;
  /** Threads of the "together" phases (the N of the N-worker configuration); at least 2. */
  readonly threads: number;
}

/** One alone/together pair at one batch size. */
export interface ComputeScalingSample {
  readonly batch: number;
  readonly round: number;
  /** ms per gradient of `batch` images, one thread alone. */
  readonly aloneMs: number;
  /** ms per round of the N threads each computing one shard of `batch`, the round ending when all have. */
  readonly togetherMs: number;
  /** (batch / togetherMs) / (batch / aloneMs) = aloneMs / togetherMs: N threads' images/s over one thread's. */
  readonly ratio: number;
}

const THREAD_FILE = new URL('./compute-scaling-thread.ts', import.meta.url);
/** Untimed computing before the first measurement: the wasm code tiers up, first-use allocations happen. */
const WARM_UP_MS = 1500;

export class ComputeScaling {
  private constructor(
    private readonly control: ScalingControl,
    private readonly workers: readonly Worker[],
    private readonly failed: Promise<never>,
  ) {}

  static async start(options: ComputeScalingOptions): Promise<ComputeScaling> {
    if (!Number.isSafeInteger(options.threads) || options.threads < 2) {
      throw new BenchError(`Measuring bare compute needs at least 2 threads, got ${options.threads}.`);
    }
    const control = new ScalingControl(options.threads);
    const workers: Worker[] = [];
    const failures: Promise<never>[] = [];
    const ready: Promise<void>[] = [];
    for (let id = 0; id < options.threads; id++) {
      const workerData: ScalingThreadData = {
        id, control: control.memory, train: options.train, model: options.model, weights: options.weights, backend: options.backend,
        spin: options.threads <= os.availableParallelism(),
      };
      // The thread's entry is TypeScript: it registers tsx's hooks itself first (the ones it inherits with
      // --import may not be in place yet when its entry loads).
      const entry = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(THREAD_FILE.href)}); })`;
      const worker = new Worker(entry, { eval: true, workerData });
      workers.push(worker);
      failures.push(new Promise<never>((_, reject) => {
        worker.once('error', (error) => reject(new BenchError(`A compute-scaling thread failed: ${error.message}`, { cause: error })));
        worker.once('exit', (code) => reject(new BenchError(`A compute-scaling thread stopped (exit code ${code}).`)));
      }));
      ready.push(new Promise<void>((resolve) => worker.once('message', () => resolve())));
    }
    const failed = Promise.race(failures);
    failed.catch(() => undefined);
    const scaling = new ComputeScaling(control, workers, failed);
    try {
      await Promise.race([Promise.all(ready), failed]);
      await scaling.phase(options.threads, 32, WARM_UP_MS);
    } catch (error) {
      await scaling.close();
      throw error;
    }
    return scaling;
  }

  /** `pairs` alone/together pairs at `batch`, each phase `phaseMs` long. */
  async measure(batch: number, round: number, pairs: number, phaseMs: number): Promise<ComputeScalingSample[]> {
    const n = this.workers.length;
    if (!Number.isSafeInteger(batch) || batch < n) throw new BenchError(`Measuring bare compute needs a batch of at least ${n} images, got ${batch}.`);
    const samples: ComputeScalingSample[] = [];
    for (let pair = 0; pair < pairs; pair++) {
      const alone = async () => (await this.phase(1, batch, phaseMs))[0];
      const together = async () => mean(await this.phase(n, batch, phaseMs));
      let aloneMs: number;
      let togetherMs: number;
      if (pair % 2 === 0) {
        aloneMs = await alone();
        togetherMs = await together();
      } else {
        togetherMs = await together();
        aloneMs = await alone();
      }
      samples.push({ batch, round, aloneMs, togetherMs, ratio: aloneMs / togetherMs });
    }
    return samples;
  }

  async close(): Promise<void> {
    this.control.stop();
    await Promise.allSettled(this.workers.map((worker) => worker.terminate()));
  }

  /** The first `active` threads compute shards of `batch` for `ms`; ms per round, as each thread saw it. */
  private async phase(active: number, batch: number, ms: number): Promise<number[]> {
    const generation = this.control.begin(active, batch);
    await Promise.race([new Promise((resolve) => setTimeout(resolve, ms)), this.failed]);
    this.control.end();
    const reports: ThreadReport[] = await Promise.race([this.control.reports(generation, active), this.failed]);
    return reports.map((report, id) => {
      if (report.rounds === 0) throw new BenchError(`Compute-scaling thread ${id} finished no round in a ${ms} ms phase at batch ${batch}.`);
      return report.ms / report.rounds;
    });
  }
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}
