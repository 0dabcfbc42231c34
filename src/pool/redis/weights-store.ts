/**
 * The weights in Redis: the run's weights feed (`<run>:weights-feed`), a stream the coordinator appends every
 * published version to, bytes included, and trims to the last few. One XADD per step: the 325 KB cross the
 * socket once and are stored once. Workers read the feed as it grows (weights-feed.ts): a worker whose job
 * arrived before its weights (the next step's jobs are handed out ahead) starts the moment they are out,
 * without polling. Take-backs of such jobs go on a stream of their own (`<run>:take-backs`), so that however
 * many there are, they never push the newest weights out of the feed.
 */
import type { Redis } from 'ioredis';
import type { RunKeys } from './keys.ts';
import { CodecError, bytesOf, decodeWeights, encodeWeightsParts } from './payload-codec.ts';
import { signWeights, verifyWeights } from './result-signing.ts';
import { FramePool, sendFrame } from './frame-command.ts';

/** Versions kept in the feed, for a reader that is a little behind. */
const FEED_LENGTH = 4;
/** Take-backs kept: far more than jobs are ever handed out ahead at once. */
const TAKE_BACKS_LENGTH = 64;
/** The field of a feed entry that holds an encoded weights record. */
export const FEED_FIELD = 'w';
/** The field of a take-back entry: comma-separated job ids; workers holding one give it up at once. */
export const TAKE_BACK_FIELD = 'jobs';

export class WeightsStore {
  /** The XADD's frame, reused from step to step (frame-command.ts). */
  private readonly frames = new FramePool();

  constructor(
    private readonly redis: Redis,
    private readonly keys: RunKeys,
    private readonly secret: string | undefined,
  ) {}

  /** Appends version `version` to the feed (older versions fall off its end). Returns the bytes written. */
  async publish(version: number, weights: Float32Array): Promise<number> {
    const signature = this.secret ? signWeights(this.secret, this.keys.runId, version, bytesOf(weights)) : undefined;
    const parts = encodeWeightsParts({ runId: this.keys.runId, version, values: weights, ...(signature ? { signature } : {}) });
    await sendFrame(this.redis, this.frames, 'xadd', [this.keys.weightsFeed, 'MAXLEN', String(FEED_LENGTH), '*', FEED_FIELD, parts]);
    return parts.reduce((sum, part) => sum + part.byteLength, 0);
  }
}

/**
 * Tells the workers that these jobs (handed out ahead of their weights) are withdrawn: a worker holding one
 * while it waits for its weights fails it at once, and is free for the jobs that are due.
 */
export async function takeBackJobs(redis: Redis, keys: RunKeys, jobIds: readonly string[]): Promise<void> {
  await redis.xadd(keys.takeBacks, 'MAXLEN', TAKE_BACKS_LENGTH, '*', TAKE_BACK_FIELD, jobIds.join(','));
}

/** The value of field `name` in a stream entry's flat [name, value, ...] list. */
export function entryField(fields: readonly Buffer[], name: string): Buffer | undefined {
  return fields.find((_, i) => i % 2 === 1 && fields[i - 1].toString() === name);
}

/** Why a worker could not use a weights version. */
export class WeightsUnavailable extends Error {}

/**
 * The newest version in the run's feed (a worker's fallback when the feed has been silent a while): undefined
 * when the feed is empty or absent; WeightsUnavailable when it does not decode, belongs to another run, has the
 * wrong length, or (with a secret) is unsigned or badly signed.
 */
export async function latestWeights(
  redis: Redis,
  keys: RunKeys,
  parameterCount: number,
  secret: string | undefined,
): Promise<{ version: number; values: Float32Array } | undefined> {
  const entries = (await redis.xrevrangeBuffer(keys.weightsFeed, '+', '-', 'COUNT', 1)) as [Buffer, Buffer[]][];
  const fields = entries[0]?.[1];
  if (!fields) return undefined;
  const bytes = entryField(fields, FEED_FIELD);
  if (!bytes) throw new WeightsUnavailable('the newest entry of the weights feed holds no weights');
  return readWeightsRecord(bytes, keys, undefined, parameterCount, secret);
}

/**
 * The weights in an encoded record (a feed entry), checked: a WeightsUnavailable when it does not decode, names
 * another run (or, with `version` given, another version), has the wrong length, or (with a secret) is
 * unsigned or badly signed. `version` undefined accepts the version the record names.
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
