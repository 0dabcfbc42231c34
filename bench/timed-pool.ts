/**
 * A WorkerPool that forwards every call to the real pool and notes when each step's phases start and end, so
 * the benchmark can time the trainer's own loop (src/train/trainer.ts) from the outside: per step, the
 * computeGradients call (workers computing, plus messages both ways), then — between its end and the next
 * publishWeights — the ordered sum and Adam, then the weights' publication.
 */
import type { EvalResult, EvalTask, ShardTask, WorkerPool } from '../src/pool/worker-pool.ts';
import { busyBetween, type BusyProbe, type BusySample } from './worker-busy.ts';

export interface StepTiming {
  /** performance.now() around pool.computeGradients. */
  computeStart: number;
  computeEnd: number;
  /** Each worker's CPU and no-core time during computeGradients (per-step probes only), else null. */
  busy: BusySample | null;
  /** performance.now() around the pool.publishWeights that follows (NaN until it happens). */
  publishStart: number;
  publishEnd: number;
}

export class TimedPool implements WorkerPool {
  readonly steps: StepTiming[] = [];

  constructor(
    private readonly inner: WorkerPool,
    private readonly probe: BusyProbe | null,
  ) {}

  get backend() {
    return this.inner.backend;
  }

  get numerics() {
    return this.inner.numerics;
  }

  describe(): string {
    return this.inner.describe();
  }

  /** Forgets the steps recorded so far (between measurements). */
  reset(): void {
    this.steps.length = 0;
  }

  async publishWeights(version: number, weights: Float32Array): Promise<void> {
    const start = performance.now();
    await this.inner.publishWeights(version, weights);
    const last = this.steps.at(-1);
    if (last && Number.isNaN(last.publishStart)) {
      last.publishStart = start;
      last.publishEnd = performance.now();
    }
  }

  async computeGradients(tasks: readonly ShardTask[], next?: readonly ShardTask[], into?: readonly Float32Array[]): Promise<Float32Array[]> {
    const perStep = this.probe?.kind === 'per-step';
    const before = perStep ? this.probe!.sample() : null;
    const computeStart = performance.now();
    const results = await this.inner.computeGradients(tasks, next, into);
    const computeEnd = performance.now();
    const after = perStep ? this.probe!.sample() : null;
    this.steps.push({ computeStart, computeEnd, busy: busyBetween(before, after), publishStart: NaN, publishEnd: NaN });
    return results;
  }

  recycle(results: readonly Float32Array[]): void {
    this.inner.recycle(results);
  }

  evaluate(tasks: readonly EvalTask[]): Promise<EvalResult[]> {
    return this.inner.evaluate(tasks);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
