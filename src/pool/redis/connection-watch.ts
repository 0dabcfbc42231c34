/**
 * How the coordinator rides out a lost Redis connection: it watches its main client, and an operation or a
 * round fails with RedisConnectionError only once Redis has been away for longer than the outage limit
 * (TRAINER_REDIS_OUTAGE_SECONDS, default 60 s). Nothing of an unfinished step is applied meanwhile.
 */
import type { Redis } from 'ioredis';
import { RedisConnectionError } from '../../errors/index.ts';
import type { RedisTarget } from './connection.ts';

const DEFAULT_OUTAGE_S = 60;

export class ConnectionWatch {
  private since: number | undefined;
  private lastError = '';
  private closed = false;

  constructor(
    redis: Redis,
    private readonly target: RedisTarget,
    private readonly log: (line: string) => void,
    /** The option; else $TRAINER_REDIS_OUTAGE_SECONDS; else 60 s. */
    private readonly outageSeconds?: number,
  ) {
    redis.on('close', () => {
      this.since ??= Date.now();
    });
    redis.on('error', (error: Error) => {
      this.lastError = error.message;
    });
    redis.on('ready', () => {
      if (this.since !== undefined && !this.closed) {
        this.log(`Redis at ${this.target.display} is back after ${((Date.now() - this.since) / 1000).toFixed(1)} s.`);
      }
      this.since = undefined;
    });
  }

  /** Whether the main client is connected now. */
  get connected(): boolean {
    return this.since === undefined;
  }

  /** Stops reporting reconnections (the pool is closing). */
  close(): void {
    this.closed = true;
  }

  private limitSeconds(): number {
    const fromEnv = Number(process.env.TRAINER_REDIS_OUTAGE_SECONDS);
    return this.outageSeconds ?? (Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : DEFAULT_OUTAGE_S);
  }

  /** Throws RedisConnectionError once Redis has been unreachable for longer than the outage limit. */
  check(now: number): void {
    if (this.since !== undefined && now - this.since > this.limitSeconds() * 1000) {
      throw new RedisConnectionError(
        `Lost the connection to Redis at ${this.target.display} ${Math.round((now - this.since) / 1000)} s ago` +
          `${this.lastError ? ` (${this.lastError})` : ''} and it has not come back. Nothing of the unfinished step was applied: ` +
          'the checkpoint in the output folder holds the last completed step. Once Redis is back, run the coordinator again with --resume.',
      );
    }
  }

  /**
   * Runs a Redis operation, riding out a disconnection up to the outage limit: it fails (RedisConnectionError)
   * as soon as Redis has been away that long, or when the operation itself fails.
   */
  async whileConnected<T>(operation: () => Promise<T>, what: string): Promise<T> {
    let watch: NodeJS.Timeout | undefined;
    const outage = new Promise<never>((_, reject) => {
      watch = setInterval(() => {
        try {
          this.check(Date.now());
        } catch (error) {
          reject(error);
        }
      }, 250);
    });
    try {
      return await Promise.race([operation(), outage]);
    } catch (error) {
      if (error instanceof RedisConnectionError) throw error;
      throw new RedisConnectionError(
        `Redis at ${this.target.display} failed while ${what} (${(error as Error).message}). The checkpoint in the output folder holds ` +
          'the last completed step; once Redis works again, run the coordinator again with --resume.',
        { cause: error },
      );
    } finally {
      clearInterval(watch);
    }
  }
}
