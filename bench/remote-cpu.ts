/**
 * Where a remote step's CPU goes, beyond the workers' (worker-busy.ts): the coordinator process's own CPU time
 * (process.cpuUsage: every thread of it, garbage collection included) and Redis's (INFO cpu: used_cpu_user +
 * used_cpu_sys, the whole server, so nothing else should use that Redis meanwhile). On one machine the workers,
 * the coordinator and Redis share the cores: their sum against the step's wall time says how busy the cores were,
 * which is what bounds a remote step there.
 */
import { Redis } from 'ioredis';
import { parseRedisUrl } from '../src/pool/redis/connection.ts';

/** CPU milliseconds per step of each part of a remote step (workers: all worker processes together). */
export interface RemoteCpu {
  readonly workersMs: number;
  readonly coordinatorMs: number;
  /** null when Redis's INFO could not be read. */
  readonly redisMs: number | null;
}

export interface CpuReading {
  readonly coordinatorMs: number;
  readonly redisMs: number | null;
}

/** Reads the coordinator's and Redis's cumulative CPU time. */
export class RemoteCpuProbe {
  private readonly redis: Redis;

  constructor(url: string) {
    this.redis = new Redis({ ...parseRedisUrl(url).options, maxRetriesPerRequest: 1, retryStrategy: () => null });
    this.redis.on('error', () => undefined);
  }

  /** Starts a reading now (the coordinator's at once, Redis's one round trip later). */
  read(): Promise<CpuReading> {
    const { user, system } = process.cpuUsage();
    return this.redisCpuMs().then((redisMs) => ({ coordinatorMs: (user + system) / 1000, redisMs }));
  }

  close(): void {
    this.redis.disconnect();
  }

  private async redisCpuMs(): Promise<number | null> {
    try {
      const info = await this.redis.info('cpu');
      const field = (name: string) => Number(info.match(new RegExp(`^${name}:([\\d.]+)`, 'm'))?.[1]);
      const seconds = field('used_cpu_user') + field('used_cpu_sys');
      return Number.isFinite(seconds) ? seconds * 1000 : null;
    } catch {
      return null;
    }
  }
}

/** Per step, from readings at the start and end of `steps` steps and the workers' CPU over them. */
export function remoteCpuPerStep(start: CpuReading, end: CpuReading, workersCpuMs: readonly number[], steps: number): RemoteCpu {
  return {
    workersMs: workersCpuMs.reduce((a, b) => a + b, 0) / steps,
    coordinatorMs: (end.coordinatorMs - start.coordinatorMs) / steps,
    redisMs: start.redisMs === null || end.redisMs === null ? null : (end.redisMs - start.redisMs) / steps,
  };
}
