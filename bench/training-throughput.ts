/**
 * Training images/s of the trainer itself: runs src/train/trainer.ts's train() — the real step loop (batch →
 * shards → pool → ordered sum → Adam → publish) — for a short one-epoch run over warmup + steps batches, and
 * times the steps after the warm-up through its onStep hook. The pool is wrapped in a TimedPool, so the same
 * run also gives the step breakdown.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Cifar10Dataset } from '../src/data/cifar10-dataset.ts';
import type { ModelDefinition } from '../src/model/model-definition.ts';
import { parameterCount } from '../src/model/parameter-vector.ts';
import { ADAM_DEFAULTS } from '../src/train/adam.ts';
import { type RunSettings, TUTORIAL_RECIPE } from '../src/train/run-settings.ts';
import { train } from '../src/train/trainer.ts';
import type { Checkpoint } from '../src/checkpoint/checkpoint.ts';
import { InvalidOptionError } from '../src/errors/index.ts';
import { breakdownSteps, type StepBreakdown } from './step-breakdown.ts';
import type { TimedPool } from './timed-pool.ts';
import { busyBetween, type BusyProbe, type BusySample } from './worker-busy.ts';
import type { StartingPoint } from './starting-point.ts';
import { type CpuReading, type RemoteCpuProbe, remoteCpuPerStep } from './remote-cpu.ts';

export interface ThroughputRequest {
  readonly batch: number;
  readonly shards: number;
  readonly steps: number;
  readonly warmup: number;
  /**
   * The weights version the run starts at. A pool lives through many measurements and weights versions must
   * only grow, so each run starts above the last version published (the run is handed to train() as if resumed
   * at that step, with fresh weights and Adam state).
   */
  readonly firstVersion: number;
  /** The weights and Adam's state every run starts from (./starting-point.ts); the arrays are not modified. */
  readonly start: StartingPoint;
}

export interface ThroughputResult {
  readonly seconds: number;
  readonly imagesPerSecond: number;
  readonly breakdown: StepBreakdown;
  /** The last weights version published (evaluation can use it). */
  readonly lastVersion: number;
}

export async function measureTraining(
  pool: TimedPool,
  model: ModelDefinition,
  dataset: Cifar10Dataset,
  request: ThroughputRequest,
  /** For remote workers: their CPU time, read when the warm-up ends and when the last step ends. */
  cpuProbe: BusyProbe | null,
  /** The trainer's log (its end-of-epoch line). */
  log: (line: string) => void,
  /** For remote workers: the coordinator's and Redis's CPU time, read with the workers'. */
  remoteCpu: RemoteCpuProbe | null = null,
): Promise<ThroughputResult> {
  const { batch, shards, steps, warmup, firstVersion, start } = request;
  if (warmup < 1) throw new InvalidOptionError('The benchmark needs at least one warm-up step.');
  const images = (warmup + steps) * batch;
  if (images > dataset.train.count) {
    throw new InvalidOptionError(`A measurement at batch ${batch} needs ${images} training images; the data set holds ${dataset.train.count}.`);
  }
  const settings: RunSettings = {
    model: model.name, parameterCount: parameterCount(model), seed: 1, batchSize: batch, shards, lr: 1e-3, ...ADAM_DEFAULTS,
    ...TUTORIAL_RECIPE, epochs: 1, trainCount: images, testCount: dataset.test.count, dataFingerprint: dataset.fingerprint, backend: pool.backend,
    numerics: pool.numerics,
  };
  const resumeFrom: Checkpoint = {
    settings,
    progress: { epochsDone: 0, stepInEpoch: 0, globalStep: firstVersion, epochLossSum: 0, epochCorrect: 0, epochSeen: 0, elapsedSeconds: 0 },
    // Copied into the trainer's optimizer (train() changes neither): every run starts from the same point.
    weights: start.weights,
    adam: start.adam,
    history: [],
  };
  // train() ends its epoch with a checkpoint and model files: they go to a throw-away folder, after the clock.
  const outDir = await fs.mkdtemp(path.join(os.tmpdir(), 'cifar-bench-'));
  const ends: number[] = [];
  let cpuAtStart: BusySample | null = null;
  let cpuAtEnd: BusySample | null = null;
  let otherCpuAtStart: Promise<CpuReading> | undefined;
  let otherCpuAtEnd: Promise<CpuReading> | undefined;
  pool.reset();
  try {
    const outcome = await train({
      settings, model, dataset, pool, outDir, resumeFrom, log, stopRequested: () => false,
      onStep: (globalStep) => {
        ends.push(performance.now());
        const done = globalStep - firstVersion;
        if (cpuProbe && done === warmup) cpuAtStart = cpuProbe.sample();
        if (cpuProbe && done === warmup + steps) cpuAtEnd = cpuProbe.sample();
        if (remoteCpu && done === warmup) otherCpuAtStart = remoteCpu.read();
        if (remoteCpu && done === warmup + steps) otherCpuAtEnd = remoteCpu.read();
      },
    });
    const wallMs = ends[warmup + steps - 1] - ends[warmup - 1];
    const cpuBusy = busyBetween(cpuAtStart as BusySample | null, cpuAtEnd as BusySample | null);
    const breakdown = breakdownSteps(pool.steps.slice(warmup, warmup + steps), wallMs, cpuBusy);
    const others = otherCpuAtStart && otherCpuAtEnd ? await Promise.all([otherCpuAtStart, otherCpuAtEnd]) : undefined;
    return {
      seconds: wallMs / 1000,
      imagesPerSecond: (steps * batch) / (wallMs / 1000),
      breakdown: others && cpuBusy ? { ...breakdown, remoteCpu: remoteCpuPerStep(others[0], others[1], cpuBusy.cpuMs, steps) } : breakdown,
      lastVersion: outcome.weightsVersion,
    };
  } finally {
    await fs.rm(outDir, { recursive: true, force: true });
  }
}
