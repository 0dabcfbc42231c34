import { TrainerError } from './trainer-error.ts';

/** Shards were not computed within the configured limit (no worker present, or workers too slow). */
export class WorkerTimeoutError extends TrainerError {}
