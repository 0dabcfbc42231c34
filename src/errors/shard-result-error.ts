import { TrainerError } from './trainer-error.ts';

/** A worker returned a shard result that cannot be applied (wrong length, NaN/Inf, stale or duplicate). */
export class ShardResultError extends TrainerError {}
