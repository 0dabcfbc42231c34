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
  const values = checkLength(result, parameterCount, from);
  const bad = firstNonFinite(values);
  if (bad >= 0) throw new ShardResultError(`Shard result from ${from} holds ${values[bad]} at position ${bad}; discarded.`);
  return checkCorrect(values, shardSize, from);
}

/**
 * validateShardResult without the scan of every value for NaN and ±Infinity: the length and the correct count
 * only. For results whose values are checked where they are summed (Optimizer.averageShards rejects a
 * non-finite one, naming the shard and position, in the same pass as the sum) and that a second try would not
 * change (a local thread's: the same shard and weights give the same floats).
 */
export function validateShardShape(result: unknown, parameterCount: number, shardSize: number, from: string): Float32Array {
  return checkCorrect(checkLength(result, parameterCount, from), shardSize, from);
}

function checkLength(result: unknown, parameterCount: number, from: string): Float32Array {
  if (!(result instanceof Float32Array)) {
    throw new ShardResultError(`Shard result from ${from} is not a Float32Array (got ${describe(result)}); discarded.`);
  }
  const expected = shardResultLength(parameterCount);
  if (result.length !== expected) {
    throw new ShardResultError(`Shard result from ${from} has ${result.length} values, expected ${expected}; discarded.`);
  }
  return result;
}

function checkCorrect(result: Float32Array, shardSize: number, from: string): Float32Array {
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
