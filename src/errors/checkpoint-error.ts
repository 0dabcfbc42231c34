import { TrainerError } from './trainer-error.ts';

/** A checkpoint is missing, corrupt, or does not match the model or settings. */
export class CheckpointError extends TrainerError {}
