/**
 * The next step's jobs, handed out ahead: while a step runs, its successor's shards are already queued behind
 * it, so a worker that finishes takes one at once and waits for its weights on the feed (BullMQ's hand-off is
 * then off the next step's critical path). Jobs handed out ahead are withdrawn (taken back) when they are not
 * coming after all, or must make way for a shard of the running step that needs a worker again.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ShardTask } from '../worker-pool.ts';
import { withDeadline } from './connection.ts';
import type { RunKeys } from './keys.ts';
import { type OpenRound, type RoundTask, retryTask } from './round-task.ts';
import { takeBackJobs } from './weights-store.ts';

interface AheadRound {
  readonly round: number;
  readonly shards: readonly ShardTask[];
  readonly tasks: RoundTask<Float32Array>[];
  /** Taken back while the running step goes on (holdBack); handed out with the next call. */
  heldBack: boolean;
}

export class HandOutAhead {
  private ahead: AheadRound | undefined;
  /** Jobs to withdraw whose take-back is not written yet (see takeBack). */
  private readonly due = new Set<string>();

  constructor(
    private readonly queue: Queue,
    private readonly redis: Redis,
    private readonly keys: RunKeys,
    private readonly connected: () => boolean,
  ) {}

  /** Remembers the round handed out ahead for `shards`. */
  set(round: number, shards: readonly ShardTask[], tasks: RoundTask<Float32Array>[]): void {
    this.ahead = { round, shards, tasks, heldBack: false };
  }

  /** The round handed out for exactly these shards, no longer ahead (the caller runs it); else undefined. */
  take(shards: readonly ShardTask[]): { round: number; tasks: RoundTask<Float32Array>[] } | undefined {
    const ahead = this.ahead;
    if (!ahead || !sameShards(ahead.shards, shards)) return undefined;
    this.ahead = undefined;
    return ahead;
  }

  /** Its tasks still to go out behind the running round's (none while held back). */
  queuedBehind(): RoundTask<unknown>[] {
    return this.ahead && !this.ahead.heldBack ? this.ahead.tasks : [];
  }

  /** Forgets the round handed out ahead, which is not coming: its jobs are taken back. Returns its number. */
  async drop(): Promise<number | undefined> {
    const ahead = this.ahead;
    if (!ahead) return undefined;
    this.ahead = undefined;
    await this.takeBack(ahead.tasks);
    return ahead.round;
  }

  /**
   * A task of the running step needs a worker again (its job stalled, failed or was rejected): the jobs handed
   * out ahead are taken back until this step is done. Otherwise workers holding them (waiting for weights that
   * need this step) could leave no one to take it; and a retried job queues behind them.
   */
  async holdBack(): Promise<void> {
    const ahead = this.ahead;
    if (!ahead || ahead.heldBack) return;
    ahead.heldBack = true;
    await this.takeBack(ahead.tasks);
    for (const task of ahead.tasks) if (task.result === undefined) retryTask(task);
  }

  /**
   * After the run's keys were restored: withdrawals written before went with Redis, and workers may hold jobs
   * Redis no longer knows (waiting for weights). Every earlier attempt of an open task is withdrawn again.
   */
  withdrawEarlierAttempts(rounds: Iterable<OpenRound>): void {
    for (const round of rounds) for (const task of round.tasks) for (const id of task.earlier) this.due.add(id);
  }

  /**
   * Withdraws every attempt of `tasks` that went out as a job: queued ones are removed, and workers holding one
   * while it waits for its weights give it up (a take-back entry on the weights feed). A withdrawal that cannot
   * be written now (Redis away) stays due and is written by a later flush(): a worker left holding a job whose
   * weights never come would hold it until --shard-timeout. A job that escapes ends as 'late' or 'failed',
   * which changes nothing.
   */
  async takeBack(tasks: readonly RoundTask<unknown>[]): Promise<void> {
    for (const t of tasks) {
      for (const id of t.earlier) this.due.add(id);
      if (t.submitted) this.due.add(t.jobId);
    }
    await this.flush();
  }

  /** Writes the withdrawals still due; they stay due when Redis does not take them. */
  async flush(): Promise<void> {
    if (this.due.size === 0 || !this.connected()) return;
    const ids = [...this.due];
    try {
      await withDeadline(
        (async () => {
          await Promise.all(ids.map((id) => this.queue.remove(id).catch(() => undefined)));
          await takeBackJobs(this.redis, this.keys, ids);
        })(),
        2000,
        () => new Error('timed out'),
      );
      for (const id of ids) this.due.delete(id);
    } catch {
      // Redis away: the next flush writes them.
    }
  }
}

/** Whether two steps' shard lists are the same work (step, shard, weights version and image indices). */
function sameShards(a: readonly ShardTask[], b: readonly ShardTask[]): boolean {
  return a === b || (a.length === b.length && a.every((x, i) => {
    const y = b[i];
    return x.step === y.step && x.shard === y.shard && x.weightsVersion === y.weightsVersion &&
      x.indices.length === y.indices.length && x.indices.every((index, k) => index === y.indices[k]);
  }));
}
