import { TrainerError } from '../src/errors/index.ts';

/** The benchmark cannot go on: a child process failed, a reference could not start, a result is unusable. */
export class BenchError extends TrainerError {}
