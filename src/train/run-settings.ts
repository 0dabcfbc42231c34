import type { BackendName } from '../compute/backend.ts';

/**
 * Everything a run's result depends on. Recorded in every checkpoint; `--resume` refuses a checkpoint whose
 * settings differ from the model and data at hand. The worker count is deliberately absent: it never changes
 * the result.
 */
export interface RunSettings {
  readonly model: string;
  readonly parameterCount: number;
  readonly seed: number;
  readonly batchSize: number;
  readonly shards: number;
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly epochs: number;
  readonly trainCount: number;
  readonly testCount: number;
  /** SHA-256 of the data set files (see src/data). */
  readonly dataFingerprint: string;
  /** Backend the shards are computed with; different backends round differently. */
  readonly backend: BackendName;
}
