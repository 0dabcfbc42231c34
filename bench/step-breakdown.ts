/**
 * One training step's time, split into where it goes. Milliseconds per step, means over the timed steps:
 *
 *   step        = wall time between the ends of consecutive steps
 *   poolCall    = pool.computeGradients, from the coordinator's side
 *   compute     = CPU time the workers spent on their shards (mean over the workers that had one)
 *   noCore      = time those workers were ready to compute but had no core (taken by other threads or processes)
 *   waiting     = slowest worker's busy time − the mean busy time (busy = compute + noCore): how long the others
 *                 (and the coordinator) wait for the slowest one
 *   transfer    = poolCall − slowest worker's busy time (tasks out, gradients back, scheduling, waking up), plus
 *                 pool.publishWeights (weights to the workers)
 *   reduceAdam  = between computeGradients' end and publishWeights' start: the ordered sum of the shard
 *                 gradients and Adam, on the coordinator
 *   other       = the rest of the coordinator's loop (batch slicing, progress bar, the benchmark's step hook)
 *
 * so step = compute + noCore + waiting + transfer + reduceAdam + other. Local threads are measured around every
 * step (./worker-busy.ts); remote worker processes only over the whole measurement: compute and noCore are then
 * their means per step, and waiting cannot be told apart from transfer, so it stays inside transfer.
 */
import type { StepTiming } from './timed-pool.ts';
import type { BusySample } from './worker-busy.ts';
import type { RemoteCpu } from './remote-cpu.ts';

export interface StepBreakdown {
  /** How compute was measured: per step (threads), from totals (processes), or not at all. */
  readonly method: 'per-step' | 'totals' | 'none';
  readonly stepMs: number;
  readonly poolCallMs: number;
  readonly computeMs: number | null;
  readonly noCoreMs: number | null;
  readonly waitingMs: number | null;
  readonly transferMs: number | null;
  readonly reduceAdamMs: number;
  readonly otherMs: number;
  /** Remote workers only: CPU per step of the workers, the coordinator and Redis (./remote-cpu.ts). */
  readonly remoteCpu?: RemoteCpu;
}

const mean = (values: readonly number[]) => (values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length);

/**
 * @param steps the timed steps only (warm-up left out)
 * @param wallMs wall time of those steps
 * @param totals for 'totals' probes: each worker's CPU and no-core milliseconds over the timed steps
 */
export function breakdownSteps(steps: readonly StepTiming[], wallMs: number, totals: BusySample | null = null): StepBreakdown {
  const n = steps.length;
  const stepMs = wallMs / n;
  const poolCall = steps.map((s) => s.computeEnd - s.computeStart);
  const publish = steps.map((s) => (Number.isNaN(s.publishStart) ? 0 : s.publishEnd - s.publishStart));
  const reduce = steps.map((s) => (Number.isNaN(s.publishStart) ? 0 : s.publishStart - s.computeEnd));
  const poolCallMs = mean(poolCall);
  const publishMs = mean(publish);
  const reduceAdamMs = mean(reduce);
  const otherMs = Math.max(0, stepMs - poolCallMs - reduceAdamMs - publishMs);
  const base = { stepMs, poolCallMs, reduceAdamMs, otherMs };

  if (n > 0 && steps.every((s) => s.busy !== null && s.busy.cpuMs.length > 0)) {
    const compute: number[] = [];
    const noCore: number[] = [];
    const waiting: number[] = [];
    const transfer: number[] = [];
    steps.forEach((s, i) => {
      const busy = s.busy!.cpuMs.map((cpu, w) => cpu + s.busy!.queuedMs[w]);
      const slowest = Math.min(Math.max(...busy), poolCall[i]);
      // Only the workers that had a shard this step (one without shows ~0).
      const used = busy.map((b, w) => w).filter((w) => busy[w] > 0.05 * slowest);
      const cpu = mean(used.map((w) => s.busy!.cpuMs[w]));
      const queued = mean(used.map((w) => s.busy!.queuedMs[w]));
      const average = Math.min(cpu + queued, slowest);
      compute.push(Math.min(cpu, average));
      noCore.push(average - Math.min(cpu, average));
      waiting.push(slowest - average);
      transfer.push(poolCall[i] - slowest + publish[i]);
    });
    // A thread that never sleeps (one watching its channel between tasks) has its CPU time brought up to date
    // only at scheduler ticks: then some steps show none at all, and the split is not to be had.
    if (!compute.every(Number.isFinite)) return { method: 'none', ...base, computeMs: null, noCoreMs: null, waitingMs: null, transferMs: null };
    return { method: 'per-step', ...base, computeMs: mean(compute), noCoreMs: mean(noCore), waitingMs: mean(waiting), transferMs: mean(transfer) };
  }
  if (totals && totals.cpuMs.length > 0 && n > 0) {
    const computeMs = Math.min(mean(totals.cpuMs) / n, poolCallMs);
    const noCoreMs = Math.min(mean(totals.queuedMs) / n, poolCallMs - computeMs);
    return { method: 'totals', ...base, computeMs, noCoreMs, waitingMs: null, transferMs: poolCallMs - computeMs - noCoreMs + publishMs };
  }
  return { method: 'none', ...base, computeMs: null, noCoreMs: null, waitingMs: null, transferMs: null };
}
