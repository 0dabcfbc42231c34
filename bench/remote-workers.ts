/**
 * Remote workers for the benchmark: N `npm run worker` processes on this machine, serving a local Redis. They
 * are started as `node --import tsx workers/remote-worker.ts` (what `npm run worker` runs, without npm and tsx's
 * launcher in between), so their pids are the processes whose memory and CPU time count.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { BenchError } from './bench-error.ts';
import { WORKER_HEAP_FLAG } from '../src/pool/redis/worker-heap.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WORKER_CLI = fileURLToPath(new URL('../workers/remote-worker.ts', import.meta.url));
const REDIS_POOL = fileURLToPath(new URL('../src/pool/redis/redis-pool.ts', import.meta.url));
/** What workers/remote-worker.ts prints once its data is loaded and it polls Redis. */
const READY = /waiting for runs|ready/i;

/** Why remote workers cannot be benchmarked here, or null when they can. */
export async function remoteUnavailable(url: string): Promise<string | null> {
  if (!existsSync(REDIS_POOL)) return 'src/pool/redis-pool.ts does not exist yet';
  if (!existsSync(WORKER_CLI)) return 'workers/remote-worker.ts (`npm run worker`) does not exist yet';
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.ping();
    return null;
  } catch (error) {
    return `Redis is not reachable at ${url} (${(error as Error).message})`;
  } finally {
    redis.disconnect();
  }
}

export class RemoteWorkers {
  private constructor(private readonly children: ChildProcess[]) {}

  /** Starts `count` workers and waits until each says it is waiting for runs (or 60 s). */
  static async start(count: number, url: string, dataDir: string): Promise<RemoteWorkers> {
    const children: ChildProcess[] = [];
    const workers = new RemoteWorkers(children);
    try {
      await Promise.all(
        Array.from({ length: count }, (_, i) => {
          // One compute thread each: N processes × 1 thread against N local threads.
          const child = spawn(process.execPath, [WORKER_HEAP_FLAG, '--import', 'tsx', WORKER_CLI, '--redis', url, '--data', dataDir, '--concurrency', '1'], {
            cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, REDIS_URL: url, CIFAR10_DIR: dataDir },
          });
          children.push(child);
          return new Promise<void>((resolve, reject) => {
            const timer = setTimeout(resolve, 60_000);
            const onData = (chunk: Buffer) => {
              for (const line of chunk.toString().split('\n')) {
                if (line.trim() === '') continue;
                process.stderr.write(`  [worker ${i + 1}] ${line}\n`);
                if (READY.test(line)) {
                  clearTimeout(timer);
                  resolve();
                }
              }
            };
            child.stdout!.on('data', onData);
            child.stderr!.on('data', onData);
            child.once('exit', (code, signal) => {
              clearTimeout(timer);
              reject(new BenchError(`Remote worker ${i + 1} (workers/remote-worker.ts) exited with ${signal ?? `code ${code}`} at start.`));
            });
          });
        }),
      );
      // From here on, their output is only noise in the benchmark's log: keep reading it, show nothing.
      for (const child of children) {
        child.stdout!.removeAllListeners('data').resume();
        child.stderr!.removeAllListeners('data').resume();
      }
      return workers;
    } catch (error) {
      await workers.stop();
      throw error;
    }
  }

  get pids(): number[] {
    return this.children.map((c) => c.pid).filter((pid): pid is number => pid !== undefined);
  }

  /** Peak RSS (VmHWM) of each worker process, KB; null for one that is gone. */
  peakRssKB(): (number | null)[] {
    return this.pids.map(peakRssOfProcessKB);
  }

  /** SIGTERM (workers finish or hand back their job and leave), SIGKILL after 15 s. */
  async stop(): Promise<void> {
    await Promise.all(
      this.children.map((child) => {
        if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
        return new Promise<void>((resolve) => {
          const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        });
      }),
    );
  }
}

/** VmHWM (peak resident set) of a process from /proc/<pid>/status, KB; null when unreadable. */
export function peakRssOfProcessKB(pid: number): number | null {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}
