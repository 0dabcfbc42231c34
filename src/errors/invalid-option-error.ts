import { TrainerError } from './trainer-error.ts';

/** A command-line flag or option has a value the program cannot use. */
export class InvalidOptionError extends TrainerError {}
