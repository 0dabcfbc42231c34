import { TrainerError } from './trainer-error.ts';

/** A worker's local data set differs from the coordinator's (different fingerprint). */
export class DatasetMismatchError extends TrainerError {}
