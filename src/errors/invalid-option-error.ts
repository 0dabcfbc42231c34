import { TrainerError } from './trainer-error.ts';

/** A command-line flag or option has a value the program cannot use: a usage error, exit code 2. */
export class InvalidOptionError extends TrainerError {
  override readonly exitCode: number = 2;
}
