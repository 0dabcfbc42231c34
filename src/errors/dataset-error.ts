import { TrainerError } from './trainer-error.ts';

/** The data set is missing, truncated, the wrong size, or holds an impossible label. */
export class DatasetError extends TrainerError {}
