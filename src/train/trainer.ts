/**
 * The coordinator's training loop, top to bottom: follow one batch from the epoch's shuffled permutation to the
 * shards, the workers, the summed gradient, Adam, and the new weights. Which workers compute (local threads or
 * Redis) is hidden behind WorkerPool; nothing here depends on how many there are.
 */
import type { Cifar10Dataset } from '../data/cifar10-dataset.ts';
import type { ModelDefinition } from '../model/model-definition.ts';
import type { ShardTask, WorkerPool } from '../pool/worker-pool.ts';
import type { RunSettings } from './run-settings.ts';
import { Optimizer } from './optimizer/optimizer.ts';
import { batchIndices, cutIntoShards, epochPermutation, stepsPerEpoch, totalTrainingSteps } from './batch-plan.ts';
import { parameterSlices } from '../model/parameter-vector.ts';
import { stepGroups } from './parameter-groups.ts';
import { Lookahead } from './lookahead.ts';
import { shardCorrect, shardLossSum } from '../pool/shard-result.ts';
import { initialParameters } from '../model/parameter-vector.ts';
import { runningStatistics as runningStatisticsOf, updateRunningStatistics } from './batch-norm-state.ts';
import { type Checkpoint, type RunProgress, writeCheckpoint } from '../checkpoint/checkpoint.ts';
import { type EpochMetrics, formatEpochLine } from './metrics-log.ts';
import { writeEpochOutputs } from './epoch-outputs.ts';
import { crashPoint } from '../testing/crash-point.ts';
import { sleep, testDelayMs } from '../testing/test-delay.ts';
import { ProgressBar } from '../terminal/progress-bar.ts';
import { learningRate, type LrScheduleOptions } from './lr-schedule.ts';
import { evaluateTestSet } from '../eval/test-evaluation.ts';

export interface TrainerInput {
  readonly settings: RunSettings;
  readonly model: ModelDefinition;
  readonly dataset: Cifar10Dataset;
  readonly pool: WorkerPool;
  readonly outDir: string;
  /** Where to start: a checkpoint read by --resume, or undefined for fresh weights from the seed. */
  readonly resumeFrom?: Checkpoint;
  /** Evaluate the test set after every N epochs (0: never during training). */
  readonly evalEvery?: number;
  readonly log: (line: string) => void;
  /** Polled after every step: true (SIGINT/SIGTERM) makes the loop checkpoint where it is and return. */
  readonly stopRequested: () => boolean;
  /** Called after every step with the weights (tests use it to compare runs step by step). */
  readonly onStep?: (globalStep: number, weights: Float32Array) => void;
}

export interface TrainerOutcome {
  readonly weights: Float32Array;
  /** The weights' version as published to the pool (= steps taken). */
  readonly weightsVersion: number;
  readonly stopped: boolean;
  /** The epochs this call trained (a resumed run's earlier ones are in the checkpoint's history). */
  readonly epochs: readonly EpochMetrics[];
}

export async function train(input: TrainerInput): Promise<TrainerOutcome> {
  const { settings, dataset, pool, outDir, log } = input;
  const trainCount = settings.trainCount;
  // Epochs may be fractional: the last one then stops part-way (airbench94's 9.9 epochs are 476 steps of 48 a epoch).
  const stepsInEpoch = stepsPerEpoch(trainCount, settings.batchSize, settings.dropLast);
  const totalSteps = totalTrainingSteps(stepsInEpoch, settings.epochs);
  const epochCount = Math.ceil(settings.epochs);
  const stepsOf = (epoch: number) => Math.min(stepsInEpoch, totalSteps - (epoch - 1) * stepsInEpoch);

  // State: weights, the optimizer's state, the lookahead's average, and where in the run we are. All of it goes
  // into every checkpoint. The weights and the optimizer's state live in the optimizer (WebAssembly memory):
  // `weights` is a view of it.
  const resume = input.resumeFrom;
  const optimizer = Optimizer.create({
    weights: resume ? resume.weights : initialParameters(input.model, settings.seed, { train: dataset.train }),
    adam: resume?.adam, sgd: resume?.sgd, shards: settings.shards,
  });
  const { weights } = optimizer;
  const lookahead = settings.lookahead ? (resume?.lookahead ? Lookahead.resume(resume.lookahead, weights.length) : Lookahead.start(weights)) : undefined;
  // Batch norm's running statistics (the tutorial has none): entries of `weights` the optimizer skips.
  const runningStatistics = runningStatisticsOf(input.model);
  const statisticRanges = runningStatistics.map((s) => s.range);
  const slices = parameterSlices(input.model);
  const progress: RunProgress = resume
    ? { ...resume.progress }
    : { epochsDone: 0, stepInEpoch: 0, globalStep: 0, epochLossSum: 0, epochCorrect: 0, epochSeen: 0, elapsedSeconds: 0 };
  const schedule: LrScheduleOptions = {
    schedule: settings.lrSchedule, lr: settings.lr, totalSteps,
    warmupSteps: Math.round(settings.warmupEpochs * stepsInEpoch),
  };
  const bar = new ProgressBar('epoch {epoch}/{epochs} {bar} {value}/{total} {rate} images/s ETA {eta_formatted}', process.stdout);
  const epochs: EpochMetrics[] = [];
  // Every finished epoch's metrics line, in the checkpoint too: metrics.jsonl is written from it.
  const history: EpochMetrics[] = resume ? [...resume.history] : [];
  const checkpoint = () => writeCheckpoint(outDir, {
    settings, progress, weights, history, lookahead: lookahead?.ema,
    ...(settings.optimizer === 'adam' ? { adam: optimizer.state } : { sgd: optimizer.sgd }),
  });

  // A checkpoint is the truth; the model files and metrics.jsonl are derived from it. A process that died after
  // writing one at an epoch end may not have written them: finish them first (rewriting is harmless).
  if (input.resumeFrom) await writeEpochOutputs(outDir, input.model, progress.stepInEpoch === 0 ? weights : undefined, history);

  await pool.publishWeights(progress.globalStep, weights);
  const stepDelayMs = testDelayMs('TRAINER_TEST_STEP_DELAY_MS');
  try {
    while (progress.epochsDone < epochCount) {
      const epoch = progress.epochsDone + 1;
      const steps = stepsOf(epoch);
      const permutation = epochPermutation(settings.seed, epoch, trainCount);
      // What the optimizer changes this epoch (frozen tensors, running statistics and layers past their epochs
      // are left alone), with each group's base learning rate.
      const plan = stepGroups(slices, settings, epoch, (base) => base);
      const epochStarted = performance.now() - progress.elapsedSeconds * 1000;

      // A step's shards; its weights version is the global step number.
      const shardTasks = (step: number, globalStep: number): ShardTask[] =>
        cutIntoShards(batchIndices(permutation, step, settings.batchSize), settings.shards).map((indices, shard) => ({
          step: globalStep, shard, weightsVersion: globalStep, indices: indices.slice(),
        }));
      let next: ShardTask[] | undefined;
      for (let step = progress.stepInEpoch; step < steps; step++) {
        if (stepDelayMs > 0) await sleep(stepDelayMs);
        // 1. This step's batch, cut into the run's fixed number of shards (already cut as the previous step's next).
        const batch = batchIndices(permutation, step, settings.batchSize);
        const tasks = next ?? shardTasks(step, progress.globalStep);

        // 2. Workers compute each shard's summed gradient; results come back in shard order. The next step's
        //    shards go along, for pools that hand them out ahead (remote workers then wait only for the weights);
        //    so do the Optimizer's slots, for pools that can write the results straight where they are summed.
        next = step + 1 < steps ? shardTasks(step + 1, progress.globalStep + 1) : undefined;
        const results = await pool.computeGradients(tasks, next, optimizer.resultSlots);

        // 3. Add them in shard order (so the sum never depends on who finished first), then average (or, for
        //    the summed loss, keep the sum).
        optimizer.averageShards(results, batch.length, settings.lossReduction, statisticRanges);
        for (const result of results) {
          progress.epochLossSum += shardLossSum(result);
          progress.epochCorrect += shardCorrect(result);
        }
        pool.recycle(results);

        // 4. The optimizer on the flat parameter vector; batch norm's running statistics instead take in the
        //    shards' averaged batch statistics (see batch-norm-state.ts); the lookahead, every 5 steps, pulls the
        //    weights to its average. Then publish the new weights as the next version.
        const lrFor = (base: number) => learningRate(progress.globalStep, { ...schedule, lr: base });
        if (settings.optimizer === 'adam') {
          optimizer.adamStep({ lr: lrFor(settings.lr), beta1: settings.beta1, beta2: settings.beta2, eps: settings.eps, weightDecay: settings.weightDecay }, plan.skip);
        } else {
          optimizer.sgdStep({ momentum: settings.momentum, nesterov: settings.nesterov, groups: plan.groups.map((g) => ({ ...g, lr: lrFor(g.lr) })) });
        }
        updateRunningStatistics(weights, optimizer.gradient, runningStatistics);
        progress.globalStep += 1;
        lookahead?.afterStep(weights, progress.globalStep, totalSteps);
        progress.stepInEpoch = step + 1;
        progress.epochSeen += batch.length;
        await pool.publishWeights(progress.globalStep, weights);
        crashPoint('step:after-publish');
        input.onStep?.(progress.globalStep, weights);

        const elapsed = (performance.now() - epochStarted) / 1000;
        bar.update(step + 1, steps, { epoch, epochs: epochCount, rate: (progress.epochSeen / Math.max(elapsed, 1e-9)).toFixed(0) });
        if (input.stopRequested() && step + 1 < steps) {
          bar.clear();
          progress.elapsedSeconds = elapsed;
          await checkpoint();
          log(`Stopped at epoch ${epoch}, step ${step + 1} of ${steps}. Checkpoint written to ${outDir}; continue with --resume.`);
          return { weights, weightsVersion: progress.globalStep, stopped: true, epochs };
        }
      }

      // End of epoch: figures, optional test evaluation, checkpoint and model files.
      bar.clear();
      const time = (performance.now() - epochStarted) / 1000;
      let test: { testLoss: number; testAcc: number } | undefined;
      if (input.evalEvery && epoch % input.evalEvery === 0) {
        const report = await evaluateTestSet(pool, progress.globalStep, dataset.test, dataset.classNames, settings.testCount);
        test = { testLoss: report.loss, testAcc: report.accuracy };
      }
      const metrics: EpochMetrics = {
        epoch, loss: progress.epochLossSum / progress.epochSeen, acc: progress.epochCorrect / progress.epochSeen,
        time, trainingSeconds: history.reduce((sum, m) => sum + m.time, 0) + time, imagesPerSecond: progress.epochSeen / time,
        globalStep: progress.globalStep, workers: pool.describe(), ...test, timestamp: new Date().toISOString(),
      };
      // The epoch's outputs as one recoverable unit: the checkpoint (which holds the metrics line) first, then
      // what is derived from it; --resume rewrites the derived files whenever it starts.
      Object.assign(progress, { epochsDone: epoch, stepInEpoch: 0, epochLossSum: 0, epochCorrect: 0, epochSeen: 0, elapsedSeconds: 0 });
      history.push(metrics);
      await checkpoint();
      crashPoint('epoch-end:after-checkpoint');
      await writeEpochOutputs(outDir, input.model, weights, history);
      epochs.push(metrics);
      log(formatEpochLine(metrics));
      if (input.stopRequested() && progress.epochsDone < epochCount) {
        log(`Stopped after epoch ${epoch}. Checkpoint written to ${outDir}; continue with --resume.`);
        return { weights, weightsVersion: progress.globalStep, stopped: true, epochs };
      }
    }
  } catch (error) {
    // The weights and Adam's state are consistent after every completed step: keep them for --resume.
    bar.clear();
    await checkpoint().catch(() => undefined);
    throw error;
  }
  return { weights, weightsVersion: progress.globalStep, stopped: false, epochs };
}
