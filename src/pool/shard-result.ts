import { ShardResultError } from '../errors/index.ts';
import { firstNonFinite } from '../train/optimizer/finite-scan.ts';

/**
 * What crosses the boundary from a worker for one shard: one flat Float32Array of length parameterCount + 2,
 * [gradient of the summed cross-entropy over the shard's images..., loss sum, correct predictions].
 * Transferred (threads) or sent as raw bytes (Redis), never as a JSON array of numbers.
 */
export function shardResultLength(parameterCount: number): number {
  return parameterCount + 2;
}

export function shardLossSum(result: Float32Array): number {
  return result[result.length - 2];
}

export function shardCorrect(result: Float32Array): number {
  return result[result.length - 1];
}

/**
 * Rejects a result that must never reach the weights: wrong length, NaN or ±Infinity anywhere, or a correct
 * count that is not an integer in [0, shardSize]. `from` names the worker for the message.
 */
export function validateShardResult(result: unknown, parameterCount: number, shardSize: number, from: string): Float32Array {
  if (!(result instanceof Float32Array)) {
    throw new ShardResultError(`Shard result from ${from} is not a Float32Array (got ${describe(result)}); discarded.`);
  }
  const expected = shardResultLength(parameterCount);
  if (result.length !== expected) {
    throw new ShardResultError(`Shard result from ${from} has ${result.length} values, expected ${expected}; discarded.`);
  }
  const bad = firstNonFinite(result);
  if (bad >= 0) throw new ShardResultError(`Shard result from ${from} holds ${result[bad]} at position ${bad}; discarded.`);
  const correct = shardCorrect(result);
  if (!Number.isInteger(correct) || correct < 0 || correct > shardSize) {
    throw new ShardResultError(`Shard result from ${from} claims ${correct} correct out of ${shardSize}; discarded.`);
  }
  return result;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return typeof value;
}
