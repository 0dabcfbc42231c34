import { TrainerError } from './trainer-error.ts';

/** A local worker thread died (out of memory, a crash in native code): the pool cannot go on without it. */
export class WorkerThreadError extends TrainerError {}
