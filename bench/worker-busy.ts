/**
 * How much each worker computed, read from outside the workers (the benchmark changes no project file): from
 * Linux's /proc/.../schedstat, the CPU time (first field, ns) and the time spent runnable but waiting for a core
 * (second field, ns: "no core" in the report — on 2 cores, what other processes or threads took).
 * - local threads: each piscina worker thread's own CPU time. The threads are recognised as the OS threads that
 *   appeared in this process while the ThreadPool was created (see newThreadIds). Event-loop utilisation would
 *   be the obvious measure but is useless here: piscina's threads wait for tasks in Atomics.wait, which counts
 *   as an active event loop. CPU time is cheap enough to read around every step.
 * - remote worker processes: the CPU time of all their threads (compute thread, BullMQ, msgpack, GC), read only
 *   at the start and end of a measurement, since reading every thread of two processes each step would slow
 *   the coordinator down.
 * CPU time + time waiting for a core = the wall time a worker was busy.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface BusyProbe {
  /** 'per-step': cheap enough to sample around every step; 'totals': only over a whole measurement. */
  readonly kind: 'per-step' | 'totals';
  /** Cumulative milliseconds per worker (stable order), or null when unreadable. */
  sample(): BusySample | null;
}

export interface BusySample {
  /** CPU time of each worker. */
  readonly cpuMs: number[];
  /** Time each worker was ready to run but had no core. */
  readonly queuedMs: number[];
}

/** after − before, worker by worker; null when either is missing or they differ in length. */
export function busyBetween(before: BusySample | null, after: BusySample | null): BusySample | null {
  if (!before || !after || before.cpuMs.length !== after.cpuMs.length) return null;
  return {
    cpuMs: after.cpuMs.map((v, i) => v - before.cpuMs[i]),
    queuedMs: after.queuedMs.map((v, i) => v - before.queuedMs[i]),
  };
}

/** OS thread ids of this process. */
export function threadIds(): number[] {
  try {
    return readdirSync('/proc/self/task').map(Number);
  } catch {
    return [];
  }
}

/** The threads in `after` that were not in `before` and still exist. */
export function newThreadIds(before: readonly number[], after: readonly number[]): number[] {
  const old = new Set(before);
  const alive = new Set(threadIds());
  return after.filter((tid) => !old.has(tid) && alive.has(tid));
}

function readSchedstat(path: string): [number, number] | null {
  try {
    const [cpu, queued] = readFileSync(path, 'utf8').split(' ', 2).map(Number);
    return Number.isFinite(cpu) && Number.isFinite(queued) ? [cpu / 1e6, queued / 1e6] : null;
  } catch {
    return null;
  }
}

function sampleOf(values: readonly ([number, number] | null)[]): BusySample | null {
  if (values.some((v) => v === null)) return null;
  return { cpuMs: values.map((v) => v![0]), queuedMs: values.map((v) => v![1]) };
}

/** CPU time of some threads of this process, sampled around every step. */
export function threadCpuProbe(tids: readonly number[]): BusyProbe | null {
  const paths = tids.map((tid) => `/proc/self/task/${tid}/schedstat`);
  if (paths.length === 0 || paths.some((p) => readSchedstat(p) === null)) return null;
  return { kind: 'per-step', sample: () => sampleOf(paths.map(readSchedstat)) };
}

/** [CPU ms, queued ms] summed over all threads of a process, or null when it is gone or /proc is unavailable. */
export function processSchedstat(pid: number): [number, number] | null {
  try {
    let cpu = 0;
    let queued = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const v = readSchedstat(`/proc/${pid}/task/${tid}/schedstat`);
      if (v) {
        cpu += v[0];
        queued += v[1];
      }
    }
    return [cpu, queued];
  } catch {
    return null;
  }
}

/** CPU time of worker processes, by pid, over whole measurements. */
export function processCpuProbe(pids: readonly number[]): BusyProbe | null {
  if (pids.length === 0 || pids.some((pid) => processSchedstat(pid) === null)) return null;
  return { kind: 'totals', sample: () => sampleOf(pids.map(processSchedstat)) };
}
