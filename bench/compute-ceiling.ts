/**
 * How much scaling this machine allows, measured in the same minutes as the trainer: N threads that compute
 * shard gradients side by side with nothing to coordinate (no shared weights, no results to gather, no Adam),
 * against one thread computing whole batches alone. On a 2-core VM the two threads still share the caches,
 * the memory bus and whatever the host gives their vCPUs, so N threads are not N times one; how far from N
 * they are is the ceiling of the "N workers / 1 worker" ratio, which no coordination can beat.
 *
 * Phases alternate: one thread alone on batches of `batch` images, then all N at once on shards of it (sizes as
 * cutIntoShards gives them) in rounds that end when every thread has finished its shard, as a synchronous step
 * does; `pairs` times, the order flipping every pair so that the machine's drift does not favour either side.
 * Each pair gives one ratio: images/s of N threads together / images/s of one alone.
 * Threads: ./ceiling-thread.ts, each with its own ShardComputer on the shared training images.
 */
import { Worker } from 'node:worker_threads';
import type { BackendChoice } from '../src/compute/backend.ts';
import type { ImageSet } from '../src/data/cifar10-dataset.ts';
import { BenchError } from './bench-error.ts';
import { CeilingControl, type CeilingThreadData, type ThreadReport } from './ceiling-control.ts';

export interface CeilingOptions {
  readonly train: ImageSet;
  readonly model: string;
  readonly weights: Float32Array;
  readonly backend: BackendChoice;
  /** Threads of the "together" phases (the N of the N-worker configuration); at least 2. */
  readonly threads: number;
}

/** One alone/together pair at one batch size. */
export interface CeilingSample {
  readonly batch: number;
  readonly round: number;
  /** ms per gradient of `batch` images, one thread alone. */
  readonly aloneMs: number;
  /** ms per round of the N threads each computing one shard of `batch`, the round ending when all have. */
  readonly togetherMs: number;
  /** (batch / togetherMs) / (batch / aloneMs) = aloneMs / togetherMs: N threads' images/s over one thread's. */
  readonly ratio: number;
}

const THREAD_FILE = new URL('./ceiling-thread.ts', import.meta.url);
/** Untimed computing before the first measurement: the wasm code tiers up, first-use allocations happen. */
const WARM_UP_MS = 1500;

export class ComputeCeiling {
  private constructor(
    private readonly control: CeilingControl,
    private readonly workers: readonly Worker[],
    private readonly failed: Promise<never>,
  ) {}

  static async start(options: CeilingOptions): Promise<ComputeCeiling> {
    if (!Number.isSafeInteger(options.threads) || options.threads < 2) {
      throw new BenchError(`The compute ceiling needs at least 2 threads, got ${options.threads}.`);
    }
    const control = new CeilingControl(options.threads);
    const workers: Worker[] = [];
    const failures: Promise<never>[] = [];
    const ready: Promise<void>[] = [];
    for (let id = 0; id < options.threads; id++) {
      const workerData: CeilingThreadData = {
        id, control: control.memory, train: options.train, model: options.model, weights: options.weights, backend: options.backend,
      };
      // The thread's entry is TypeScript: it registers tsx's hooks itself first (the ones it inherits with
      // --import may not be in place yet when its entry loads).
      const entry = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(THREAD_FILE.href)}); })`;
      const worker = new Worker(entry, { eval: true, workerData });
      workers.push(worker);
      failures.push(new Promise<never>((_, reject) => {
        worker.once('error', (error) => reject(new BenchError(`A compute-ceiling thread failed: ${error.message}`, { cause: error })));
        worker.once('exit', (code) => reject(new BenchError(`A compute-ceiling thread stopped (exit code ${code}).`)));
      }));
      ready.push(new Promise<void>((resolve) => worker.once('message', () => resolve())));
    }
    const failed = Promise.race(failures);
    failed.catch(() => undefined);
    const ceiling = new ComputeCeiling(control, workers, failed);
    try {
      await Promise.race([Promise.all(ready), failed]);
      await ceiling.phase(options.threads, 32, WARM_UP_MS);
    } catch (error) {
      await ceiling.close();
      throw error;
    }
    return ceiling;
  }

  /** `pairs` alone/together pairs at `batch`, each phase `phaseMs` long. */
  async measure(batch: number, round: number, pairs: number, phaseMs: number): Promise<CeilingSample[]> {
    const n = this.workers.length;
    if (!Number.isSafeInteger(batch) || batch < n) throw new BenchError(`The compute ceiling needs a batch of at least ${n} images, got ${batch}.`);
    const samples: CeilingSample[] = [];
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
      if (report.rounds === 0) throw new BenchError(`Compute-ceiling thread ${id} finished no round in a ${ms} ms phase at batch ${batch}.`);
      return report.ms / report.rounds;
    });
  }
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}
