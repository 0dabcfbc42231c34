/**
 * The shared memory between ComputeScaling (./compute-scaling.ts) and its threads (./compute-scaling-thread.ts):
 * the main thread starts a phase (how many threads compute, at which batch size) by bumping a generation word,
 * ends it by clearing a running word, and waits until every active thread has written its report (rounds
 * completed and the wall time they took) and counted itself done. With several threads active, a round ends
 * at a barrier that all of them reach, as a synchronous step waits for its slowest shard.
 */
import type { BackendChoice } from '../src/compute/backend.ts';
import type { ImageSet } from '../src/data/cifar10-dataset.ts';

export interface ScalingThreadData {
  readonly id: number;
  readonly control: ScalingMemory;
  readonly train: ImageSet;
  readonly model: string;
  readonly weights: Float32Array;
  readonly backend: BackendChoice;
  /** Whether a thread at the barrier may spin (every thread has a core of its own) or must sleep. */
  readonly spin: boolean;
}

export interface ScalingMemory {
  readonly words: SharedArrayBuffer;
  /** Per thread: wall ms of its completed rounds, rounds completed (float64 each). */
  readonly reports: SharedArrayBuffer;
}

export interface ThreadReport {
  /** Wall time from the phase's start, as this thread saw it, to the end of its last completed round. */
  readonly ms: number;
  readonly rounds: number;
}

/** A phase as a thread sees it when it wakes. */
export interface PhaseOrder {
  readonly generation: number;
  readonly active: number;
  readonly batch: number;
}

// Int32 words.
const GENERATION = 0;
const ACTIVE = 1;
const BATCH = 2;
const RUNNING = 3;
const DONE = 4;
const STOP = 5;
/** Arrivals at the barrier that ends a round (together phases). */
const ARRIVED = 6;
const WORDS = 8;

export class ScalingControl {
  readonly memory: ScalingMemory;
  private readonly words: Int32Array;
  private readonly reportWords: Float64Array;

  constructor(threads: number, memory?: ScalingMemory) {
    this.memory = memory ?? { words: new SharedArrayBuffer(WORDS * 4), reports: new SharedArrayBuffer(threads * 2 * 8) };
    this.words = new Int32Array(this.memory.words);
    this.reportWords = new Float64Array(this.memory.reports);
  }

  // ---- main thread

  /** Starts a phase: threads 0 … active−1 compute shards of `batch` until end(). Returns its generation. */
  begin(active: number, batch: number): number {
    const w = this.words;
    Atomics.store(w, ACTIVE, active);
    Atomics.store(w, BATCH, batch);
    Atomics.store(w, DONE, 0);
    Atomics.store(w, ARRIVED, 0);
    Atomics.store(w, RUNNING, 1);
    const generation = Atomics.add(w, GENERATION, 1) + 1;
    Atomics.notify(w, GENERATION);
    return generation;
  }

  end(): void {
    Atomics.store(this.words, RUNNING, 0);
  }

  /** The reports of threads 0 … active−1 once all of them are in. */
  async reports(generation: number, active: number): Promise<ThreadReport[]> {
    for (;;) {
      const done = Atomics.load(this.words, DONE);
      if (done >= active) break;
      const wait = Atomics.waitAsync(this.words, DONE, done, 1000);
      if (wait.async) await wait.value;
      if (Atomics.load(this.words, GENERATION) !== generation) throw new Error('ScalingControl: a new phase began before the reports came in');
    }
    return Array.from({ length: active }, (_, id) => ({ ms: this.reportWords[2 * id], rounds: this.reportWords[2 * id + 1] }));
  }

  /** Tells every thread to leave its loop. */
  stop(): void {
    Atomics.store(this.words, STOP, 1);
    Atomics.add(this.words, GENERATION, 1);
    Atomics.notify(this.words, GENERATION);
  }

  // ---- threads

  /** Sleeps until a phase after `seen` begins; null once stop() was called. */
  nextPhase(seen: number): PhaseOrder | null {
    Atomics.wait(this.words, GENERATION, seen);
    if (Atomics.load(this.words, STOP) === 1) return null;
    return { generation: Atomics.load(this.words, GENERATION), active: Atomics.load(this.words, ACTIVE), batch: Atomics.load(this.words, BATCH) };
  }

  /** True while the phase of `generation` runs. */
  running(generation: number): boolean {
    return Atomics.load(this.words, RUNNING) === 1 && Atomics.load(this.words, GENERATION) === generation;
  }

  /**
   * This thread has finished round `round` (1-based) of `active` threads' rounds: waits until all have, and
   * returns true, or false when the phase of `generation` ended first. It spins when every thread has a core of
   * its own (`spin`); otherwise a spinning thread would take the core of one still computing, so it sleeps until
   * the next arrival (or 1 ms, to see the phase end).
   */
  barrier(round: number, active: number, generation: number, spin: boolean): boolean {
    Atomics.add(this.words, ARRIVED, 1);
    Atomics.notify(this.words, ARRIVED);
    for (;;) {
      const arrived = Atomics.load(this.words, ARRIVED);
      if (arrived >= round * active) return true;
      if (!this.running(generation)) return false;
      if (!spin) Atomics.wait(this.words, ARRIVED, arrived, 1);
    }
  }

  report(id: number, report: ThreadReport): void {
    this.reportWords[2 * id] = report.ms;
    this.reportWords[2 * id + 1] = report.rounds;
    Atomics.add(this.words, DONE, 1);
    Atomics.notify(this.words, DONE);
  }
}
