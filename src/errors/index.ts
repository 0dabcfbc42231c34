/**
 * Every error this project throws on purpose, in one module: the CLIs print a TrainerError's message alone (no
 * stack trace) and exit with its code (1; 2 for a usage error); anything else is a bug and keeps its stack.
 * Callers branch on the class, never on the message text. One module rather than a file per class: most are a
 * name and a line of meaning, and read best side by side.
 */

/** Base class of every error this project throws on purpose. */
export class TrainerError extends Error {
  readonly exitCode: number = 1;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A command-line flag or option has a value the program cannot use: a usage error, exit code 2. */
export class InvalidOptionError extends TrainerError {
  override readonly exitCode: number = 2;
}

/** The data set is missing, truncated, the wrong size, or holds an impossible label. */
export class DatasetError extends TrainerError {}

/** The data set is absent and could not be downloaded (offline, bad checksum, failed unpack). */
export class DatasetDownloadError extends TrainerError {}

/** A worker's local data set differs from the coordinator's (different fingerprint). */
export class DatasetMismatchError extends TrainerError {}

/** A checkpoint is missing, corrupt, or does not match the model or settings. */
export class CheckpointError extends TrainerError {}

/** Saved model files (model.json / weights.bin) are missing, corrupt or of another model. */
export class ModelFormatError extends TrainerError {}

/** The requested compute backend cannot be started in this process or thread. */
export class BackendError extends TrainerError {}

/** A worker returned a shard result that cannot be applied (wrong length, NaN/Inf, stale or duplicate). */
export class ShardResultError extends TrainerError {}

/** Shards were not computed within the configured limit (no worker present, or workers too slow). */
export class WorkerTimeoutError extends TrainerError {}

/** A local worker thread died (out of memory, a crash in native code): the pool cannot go on without it. */
export class WorkerThreadError extends TrainerError {}

/** Redis cannot be reached or refused the connection (address, password, TLS). */
export class RedisConnectionError extends TrainerError {}

/** A run folder's metrics.jsonl or eval.json, which a report is built from, is missing or corrupt. */
export class ReportDataError extends TrainerError {}

/** A file given to `npm run predict` cannot be read, or is not a PNG or JPEG image that can be decoded. */
export class ImageDecodeError extends TrainerError {}

/** The native engine (tfjs-node from a TensorFlow wheel) could not be installed. */
export class NativeInstallError extends TrainerError {}
