/**
 * The weights in Redis: one binary value per version (`<run>:weights:<version>`), written once per step by the
 * coordinator and read once per version by each worker process, never copied into jobs. Older versions are
 * deleted as soon as a newer one is out: no job of the run needs them any more.
 */
import type { Redis } from 'ioredis';
import type { RunKeys } from './keys.ts';
import { CodecError, bytesOf, decodeWeights, encodeWeights } from './payload-codec.ts';
import { signWeights, verifyWeights } from './result-signing.ts';

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
    const batch = this.redis.multi().set(this.keys.weights(version), bytes);
    if (older.length > 0) batch.del(...older.map((v) => this.keys.weights(v)));
    const replies = await batch.exec();
    const failed = replies?.find(([error]) => error);
    if (failed) throw failed[0];
    for (const v of older) this.written.delete(v);
    this.written.add(version);
    return bytes.length;
  }
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
  let record;
  try {
    record = decodeWeights(bytes);
  } catch (error) {
    if (error instanceof CodecError) throw new WeightsUnavailable(`weights version ${version} in Redis are unreadable: ${error.message}`);
    throw error;
  }
  if (record.runId !== keys.runId || record.version !== version) {
    throw new WeightsUnavailable(`the value at ${keys.weights(version)} claims to be run ${record.runId} version ${record.version}`);
  }
  if (record.values.length !== parameterCount) {
    throw new WeightsUnavailable(`weights version ${version} hold ${record.values.length} values, the model has ${parameterCount}`);
  }
  if (secret) {
    if (!record.signature) throw new WeightsUnavailable(`weights version ${version} are unsigned although TRAINER_SECRET is set`);
    if (!verifyWeights(secret, keys.runId, version, bytesOf(record.values), record.signature)) {
      throw new WeightsUnavailable(`weights version ${version} carry a bad signature (written by someone without TRAINER_SECRET?)`);
    }
  }
  return record.values;
}
