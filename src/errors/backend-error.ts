import { TrainerError } from './trainer-error.ts';

/** The requested compute backend cannot be started in this process or thread. */
export class BackendError extends TrainerError {}
