/**
 * A run's life on Redis, as its coordinator keeps it: the announcement that tells workers the run exists
 * (renewed by a heartbeat, which also counts the workers serving it), its recovery when Redis lost the run's
 * keys (restarted without persistence, or someone deleted them: announced again, weights republished), and its
 * removal at the end (workers told to leave, then every key of the run deleted).
 */
import type { Redis } from 'ioredis';
import { withDeadline } from './connection.ts';
import type { RunKeys } from './keys.ts';
import { type RunAnnouncement, announceRun, renewAnnouncement } from './run-announcement.ts';
import { deleteRunKeys } from './run-cleanup.ts';
import { readPresences } from './worker-presence.ts';
import { crashPoint } from '../../testing/crash-point.ts';

export const DEFAULT_ANNOUNCE_TTL_S = 10;

export class RunLife {
  /** Workers serving the run, as the last heartbeat saw them. */
  serving = 0;
  /** Bumped by every recovery: a round then resubmits its open tasks. */
  recoveries = 0;
  /** Whether a worker ever served this run (then removal waits for workers to leave). */
  private everServed = false;
  private runLost = false;
  private busy = false;
  private stopped = false;
  private readonly timer: NodeJS.Timeout;

  /**
   * Announces the run (its keys are under `keys`) and starts the heartbeat. `republish` writes the current
   * weights again after a recovery and returns their version, for the log.
   */
  static async start(
    redis: Redis, keys: RunKeys, announcement: RunAnnouncement, ttlSeconds: number, republish: () => Promise<number>, log: (line: string) => void,
  ): Promise<RunLife> {
    await announceRun(redis, keys, announcement, ttlSeconds * 1000);
    crashPoint('redis:after-announce');
    return new RunLife(redis, keys, announcement, ttlSeconds * 1000, republish, log);
  }

  private constructor(
    private readonly redis: Redis,
    private readonly keys: RunKeys,
    private readonly announcement: RunAnnouncement,
    private readonly ttlMs: number,
    private readonly republish: () => Promise<number>,
    private readonly log: (line: string) => void,
  ) {
    this.timer = setInterval(() => void this.beat(), Math.max(200, ttlMs / 5));
    this.timer.unref();
  }

  /** A result of this run was accepted: someone serves it. */
  markServed(): void {
    this.everServed = true;
  }

  /** Stops the heartbeat (the announcement then expires unless remove() runs). */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private async beat(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      const alive = await withDeadline(renewAnnouncement(this.redis, this.keys, this.ttlMs), this.ttlMs, () => new Error('timed out'));
      if (!alive) this.runLost = true;
      const presences = await withDeadline(readPresences(this.redis, this.keys), this.ttlMs, () => new Error('timed out'));
      this.serving = presences.filter((p) => p.state === 'serving').length;
      if (this.serving > 0) this.everServed = true;
      if (this.runLost) await this.recover();
    } catch {
      // Redis away: the round loop's ConnectionWatch decides when that becomes an error.
    } finally {
      this.busy = false;
    }
  }

  /** The run's keys vanished: announce it and its weights again. */
  private async recover(): Promise<void> {
    try {
      let version = -1;
      await withDeadline(
        (async () => {
          await announceRun(this.redis, this.keys, this.announcement, this.ttlMs);
          version = await this.republish();
        })(),
        5000,
        () => new Error('timed out'),
      );
      this.runLost = false;
      this.recoveries += 1;
      this.log(
        `Run ${this.keys.runId}'s keys vanished from Redis (restarted without persistence, or removed by someone): ` +
          `announced the run again and republished weights version ${version}.`,
      );
    } catch {
      // Try again on the next beat.
    }
  }

  /**
   * Tells workers to leave ('closing'), waits (briefly) until they have, then deletes every key of the run;
   * `closeQueue` closes BullMQ's queue in between (it would otherwise re-create a key).
   */
  async remove(closeQueue: () => Promise<void>): Promise<void> {
    crashPoint('redis:before-cleanup');
    await announceRun(this.redis, this.keys, { ...this.announcement, state: 'closing' }, this.ttlMs);
    // Workers look every half second; give the ones that served a moment to see 'closing' (even if their
    // presence keys were lost with a Redis restart), and at most 5 s to finish leaving.
    const started = Date.now();
    while (Date.now() - started < 5000) {
      const presences = await readPresences(this.redis, this.keys);
      const settled = !this.everServed || Date.now() - started > 1200;
      if (settled && !presences.some((p) => p.state === 'serving')) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await closeQueue().catch(() => undefined);
    await deleteRunKeys(this.redis, this.keys);
  }
}
