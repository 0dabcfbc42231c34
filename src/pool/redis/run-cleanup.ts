/**
 * Removing runs from Redis: a finished run's keys (all under its prefix, BullMQ's included), and runs left
 * behind by a coordinator that was killed: listed in `<namespace>:runs` but with an expired announcement, or
 * announced by an earlier attempt of the same owner (a coordinator restarted with --resume).
 */
import type { Redis } from 'ioredis';
import { RunKeys, runsKey } from './keys.ts';
import { listRuns } from './run-announcement.ts';

/** The run's keys, in SCAN batches (never a blocking KEYS). */
async function* runKeyBatches(redis: Redis, keys: RunKeys): AsyncGenerator<string[]> {
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', keys.pattern, 'COUNT', 500);
    cursor = next;
    if (batch.length > 0) yield batch;
  } while (cursor !== '0');
}

/** Deletes every key under the run's prefix and unlists the run. Returns how many keys were deleted. */
export async function deleteRunKeys(redis: Redis, keys: RunKeys): Promise<number> {
  let deleted = 0;
  for await (const batch of runKeyBatches(redis, keys)) deleted += await redis.unlink(...batch);
  await redis.srem(runsKey(keys.namespace), keys.runId);
  return deleted;
}

/** How many keys exist under a run's prefix (for tests and measurements). */
export async function countRunKeys(redis: Redis, keys: RunKeys): Promise<number> {
  let count = 0;
  for await (const batch of runKeyBatches(redis, keys)) count += batch.length;
  return count;
}

export interface SweepOptions {
  /** Never touch this run (the caller's own). */
  readonly except?: string;
  /** Also remove live-looking runs announced by this owner: earlier attempts of the caller's run. */
  readonly owner?: string;
  readonly log?: (line: string) => void;
}

/** Removes abandoned runs of a namespace; returns the ids removed. */
export async function sweepAbandonedRuns(redis: Redis, namespace: string, options: SweepOptions = {}): Promise<string[]> {
  const removed: string[] = [];
  for (const { keys, announcement } of await listRuns(redis, namespace)) {
    if (keys.runId === options.except) continue;
    const dead = announcement === undefined;
    const earlierAttempt = options.owner !== undefined && announcement?.owner === options.owner;
    if (!dead && !earlierAttempt) continue;
    const count = await deleteRunKeys(redis, keys);
    removed.push(keys.runId);
    options.log?.(
      `Removed ${count} Redis key${count === 1 ? '' : 's'} of run ${keys.runId}, ` +
        (dead ? 'left behind by a coordinator that stopped without cleaning up.' : `an earlier attempt of this run (${options.owner}).`),
    );
  }
  return removed;
}
