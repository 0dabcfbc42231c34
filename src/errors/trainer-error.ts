/**
 * Base class of every error this project throws on purpose. The CLIs print `message` (no stack trace)
 * for a TrainerError and exit with `exitCode`; anything else is a bug and keeps its stack.
 */
export class TrainerError extends Error {
  readonly exitCode: number = 1;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}
