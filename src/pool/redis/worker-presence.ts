/**
 * Which workers a run has: each worker that sees the run writes `<run>:worker:<id>` (JSON, short TTL it renews)
 * saying whether it serves the run or refuses it and why (data set differs, other backend, wrong secret...).
 * The coordinator reads them to say on whom it waits, and why nobody takes its shards.
 */
import type { Redis } from 'ioredis';
import type { RunKeys } from './keys.ts';

export interface WorkerPresence {
  readonly worker: string;
  readonly state: 'serving' | 'refused';
  /** Why the worker refuses the run (state 'refused'). */
  readonly reason?: string;
  readonly concurrency: number;
  readonly backend?: string;
  readonly since: string;
}

export async function writePresence(redis: Redis, keys: RunKeys, presence: WorkerPresence, ttlMs: number): Promise<void> {
  await redis.set(keys.worker(presence.worker), JSON.stringify(presence), 'PX', ttlMs);
}

export async function removePresence(redis: Redis, keys: RunKeys, worker: string): Promise<void> {
  await redis.del(keys.worker(worker));
}

/** Every live presence of the run, sorted by worker id. */
export async function readPresences(redis: Redis, keys: RunKeys): Promise<WorkerPresence[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', keys.workersPattern, 'COUNT', 200);
    cursor = next;
    found.push(...batch);
  } while (cursor !== '0');
  if (found.length === 0) return [];
  const texts = await redis.mget(...found);
  const out: WorkerPresence[] = [];
  for (const text of texts) {
    if (text === null) continue;
    try {
      const p = JSON.parse(text) as WorkerPresence;
      if (typeof p.worker === 'string' && (p.state === 'serving' || p.state === 'refused')) out.push(p);
    } catch {
      // not ours: ignore
    }
  }
  return out.sort((a, b) => a.worker.localeCompare(b.worker));
}

/** "2 serving (a, b); 1 refusing: c (its data set differs ...)" for logs and errors. */
export function describePresences(presences: readonly WorkerPresence[]): string {
  const serving = presences.filter((p) => p.state === 'serving');
  const refused = presences.filter((p) => p.state === 'refused');
  const parts: string[] = [];
  parts.push(serving.length === 0 ? 'no worker serves this run' : `${serving.length} worker${serving.length === 1 ? '' : 's'} serving (${serving.map((p) => p.worker).join(', ')})`);
  if (refused.length > 0) {
    parts.push(`${refused.length} refusing: ${refused.map((p) => `${p.worker} (${p.reason ?? 'no reason given'})`).join('; ')}`);
  }
  return parts.join('; ');
}
