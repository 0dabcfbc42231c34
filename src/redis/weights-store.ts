/**
 * The weights in Redis: one binary value per version (`<run>:weights:<version>`), written once per step by the
 * coordinator and read once per version by each worker process, never copied into jobs. Older versions are
 * deleted as soon as a newer one is out: no job of the run needs them any more. The same bytes are appended to
 * the run's weights feed (a stream holding the last few entries), which workers read as it grows: a worker whose
 * job arrived before its weights (the next step's jobs are handed out ahead) starts the moment they are out,
 * without polling (weights-feed.ts). The feed also carries take-backs of such jobs.
 */
import type { Redis } from 'ioredis';
import type { RunKeys } from './keys.ts';
import { CodecError, bytesOf, decodeWeights, encodeWeights } from './payload-codec.ts';
import { signWeights, verifyWeights } from './result-signing.ts';

/** Entries kept in the feed: the newest versions, and take-backs, for a reader that is a little behind. */
const FEED_LENGTH = 4;
/** The field of a feed entry that holds an encoded weights record. */
export const FEED_FIELD = 'w';
/** The field of a feed entry that takes back jobs (comma-separated ids): workers holding one give it up at once. */
export const FEED_TAKE_BACK_FIELD = 'take-back';

export class WeightsStore {
  private readonly written = new Set<number>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: RunKeys,
    private readonly secret: string | undefined,
  ) {}

  /** Writes version `version` and deletes every older version this store wrote. Returns the bytes written. */
  async publish(version: number, weights: Float32Array): Promise<number> {
    const signature = this.secret ? signWeights(this.secret, this.keys.runId, version, bytesOf(weights)) : undefined;
    const bytes = encodeWeights({ runId: this.keys.runId, version, values: weights, ...(signature ? { signature } : {}) });
    const older = [...this.written].filter((v) => v < version);
    const batch = this.redis.multi().set(this.keys.weights(version), bytes).xadd(this.keys.weightsFeed, 'MAXLEN', FEED_LENGTH, '*', FEED_FIELD, bytes);
    if (older.length > 0) batch.del(...older.map((v) => this.keys.weights(v)));
    const replies = await batch.exec();
    const failed = replies?.find(([error]) => error);
    if (failed) throw failed[0];
    for (const v of older) this.written.delete(v);
    this.written.add(version);
    return bytes.length;
  }
}

/**
 * Tells the workers that these jobs (handed out ahead of their weights) are withdrawn: a worker holding one
 * while it waits for its weights fails it at once, and is free for the jobs that are due.
 */
export async function takeBackJobs(redis: Redis, keys: RunKeys, jobIds: readonly string[]): Promise<void> {
  await redis.xadd(keys.weightsFeed, 'MAXLEN', FEED_LENGTH, '*', FEED_TAKE_BACK_FIELD, jobIds.join(','));
}

/** Why a worker could not use a weights version. */
export class WeightsUnavailable extends Error {}

/**
 * Reads version `version` of a run's weights: undefined when the key is absent; WeightsUnavailable when it
 * does not decode, belongs to another run or version, has the wrong length, or (with a secret) is unsigned or
 * badly signed.
 */
export async function fetchWeights(
  redis: Redis,
  keys: RunKeys,
  version: number,
  parameterCount: number,
  secret: string | undefined,
): Promise<Float32Array | undefined> {
  const bytes = await redis.getBuffer(keys.weights(version));
  if (bytes === null) return undefined;
  return readWeightsRecord(bytes, keys, version, parameterCount, secret).values;
}

/**
 * The weights in an encoded record (from weights:<version> or the feed), checked like fetchWeights checks them;
 * `version` undefined accepts the version the record names.
 */
export function readWeightsRecord(
  bytes: Uint8Array,
  keys: RunKeys,
  version: number | undefined,
  parameterCount: number,
  secret: string | undefined,
): { version: number; values: Float32Array } {
  let record;
  try {
    record = decodeWeights(bytes);
  } catch (error) {
    if (error instanceof CodecError) throw new WeightsUnavailable(`weights version ${version ?? '?'} in Redis are unreadable: ${error.message}`);
    throw error;
  }
  if (record.runId !== keys.runId || (version !== undefined && record.version !== version)) {
    throw new WeightsUnavailable(`weights said to be run ${keys.runId} version ${version ?? '(any)'} claim to be run ${record.runId} version ${record.version}`);
  }
  version = record.version;
  if (record.values.length !== parameterCount) {
    throw new WeightsUnavailable(`weights version ${version} hold ${record.values.length} values, the model has ${parameterCount}`);
  }
  if (secret) {
    if (!record.signature) throw new WeightsUnavailable(`weights version ${version} are unsigned although TRAINER_SECRET is set`);
    if (!verifyWeights(secret, keys.runId, version, bytesOf(record.values), record.signature)) {
      throw new WeightsUnavailable(`weights version ${version} carry a bad signature (written by someone without TRAINER_SECRET?)`);
    }
  }
  return { version: record.version, values: record.values };
}
