/** What one benchmark run records: the configurations compared and every raw sample (the JSON keeps them all). */
import type { StepBreakdown } from './step-breakdown.ts';
import type { ComputeScalingSample } from './compute-scaling.ts';

/** tfjs with 1 local thread, with N local threads, with N remote workers over Redis; PyTorch with 1 and 2 threads. */
export type ConfigId = 'tfjs-1' | 'tfjs-n' | 'remote' | 'torch-1' | 'torch-2';

export interface ConfigInfo {
  readonly id: ConfigId;
  /** Column heading, e.g. "tfjs 2 thr". */
  readonly label: string;
  /** Long form for logs and the JSON, e.g. "tfjs, 2 local worker threads (wasm)". */
  readonly description: string;
}

export interface TrainingSample {
  readonly config: ConfigId;
  readonly batch: number;
  readonly round: number;
  readonly steps: number;
  readonly imagesPerSecond: number;
  readonly msPerStep: number;
  /** tfjs only. */
  readonly breakdown: StepBreakdown | null;
}

export interface EvalSample {
  readonly config: ConfigId;
  readonly round: number;
  readonly images: number;
  readonly seconds: number;
}

/**
 * Peak RSS after the first round's measurement at this batch. Batches run in ascending order, so it is the
 * peak of everything up to and including this batch size (RSS peaks never go down).
 */
export interface MemorySample {
  readonly config: ConfigId;
  readonly batch: number;
  /** The coordinator process (for local threads: the whole process, workers included); PyTorch's process. */
  readonly coordinatorKB: number;
  /** Remote worker processes (VmHWM), one each; empty for threads and PyTorch. */
  readonly workersKB: readonly number[];
  readonly totalKB: number;
}

export interface BenchSamples {
  readonly configs: readonly ConfigInfo[];
  readonly training: TrainingSample[];
  readonly evaluation: EvalSample[];
  readonly memory: MemorySample[];
  /** How bare compute scales on this machine: alone/together pairs, several per batch size and round. */
  readonly bareCompute: ComputeScalingSample[];
  /** What was skipped or went wrong, and why. */
  readonly notes: string[];
}
