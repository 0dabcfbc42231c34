/**
 * The vocabulary between the benchmark's parent process (bench/bench.ts, through ./tfjs-runner-client.ts) and
 * a tfjs runner child (./tfjs-runner.ts). Each child is one coordinator configuration (1 local thread, N local
 * threads, or N remote workers over Redis) kept alive for the whole benchmark, so rounds can interleave with
 * PyTorch without paying start-up again, and so its peak RSS is its own.
 */
import type { BackendChoice, BackendName } from '../src/compute/backend.ts';
import type { StepBreakdown } from './step-breakdown.ts';

export interface RunnerConfig {
  /** CIFAR-10 binary folder. */
  readonly data: string;
  readonly backend: BackendChoice;
  /** Local worker threads (ignored with `redis`). */
  readonly workers: number;
  /** Redis URL: the pool is a RedisPool served by `npm run worker` processes the parent started. */
  readonly redis?: string;
  /** Process ids of those worker processes: their CPU time is the remote workers' compute time. */
  readonly workerPids?: readonly number[];
  /** An --out folder whose checkpoint every point starts from (weights and Adam's state), instead of fresh weights. */
  readonly checkpoint?: string;
}

export interface TrainRequest {
  readonly kind: 'train';
  readonly batch: number;
  /** Shards per step (= workers: each worker gets one shard of every batch). */
  readonly shards: number;
  /** Steps timed after the warm-up. */
  readonly steps: number;
  /** Steps run before the clock starts (at least 1). */
  readonly warmup: number;
}

export type RunnerRequest =
  | { readonly kind: 'init'; readonly config: RunnerConfig }
  | TrainRequest
  | { readonly kind: 'eval' }
  | { readonly kind: 'close' };

export interface TrainReply {
  readonly kind: 'trained';
  readonly batch: number;
  readonly steps: number;
  readonly seconds: number;
  readonly imagesPerSecond: number;
  readonly breakdown: StepBreakdown;
  /** process.resourceUsage().maxRSS of the child (coordinator and, for threads, its workers), KB. */
  readonly maxRssKB: number;
}

export interface EvalReply {
  readonly kind: 'evaluated';
  readonly images: number;
  readonly seconds: number;
  readonly accuracy: number;
  readonly maxRssKB: number;
}

export type RunnerReply =
  | { readonly kind: 'ready'; readonly describe: string; readonly backend: BackendName; readonly trainImages: number; readonly testImages: number; readonly maxRssKB: number }
  | TrainReply
  | EvalReply
  | { readonly kind: 'closed' }
  | { readonly kind: 'error'; readonly message: string; readonly stack?: string };
