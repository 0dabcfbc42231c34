import type { ModelDefinition } from '../model/model-definition.ts';
import { isTrainable, parameterSlices } from '../model/parameter-vector.ts';
import type { ParameterRange } from './optimizer/optimizer.ts';
import { BN_MOMENTUM } from '../model/batch-norm.ts';

/**
 * Batch norm's running statistics across shards. They sit in the flat weight vector as non-trainable entries
 * (ParameterSpec.kind 'running-mean' / 'running-variance'). In training mode each shard normalises with its
 * own batch statistics (as PyTorch DDP without SyncBatchNorm), and its result holds, at each statistic's
 * position of the gradient section, n_shard × the shard's batch value (the mean, or the unbiased variance).
 * The coordinator's ordered sum over shards ÷ batch size then gives the image-weighted mean over the shards —
 * which depends on the shard cut (--shards), never on the worker count. Adam skips these entries; this
 * function folds the value in with PyTorch's momentum: running = (1 − 0.1)·running + 0.1·value.
 */
export function runningStatisticRanges(model: ModelDefinition): ParameterRange[] {
  // In parameter order, so sorted and disjoint, as Optimizer.adamStep wants its skipped ranges.
  return parameterSlices(model)
    .filter(({ spec }) => !isTrainable(spec))
    .map(({ offset, size }) => [offset, offset + size] as const);
}

/** A running statistic's entries and its momentum (PyTorch's convention: the weight of the new value). */
export interface RunningStatistic {
  readonly range: ParameterRange;
  readonly momentum: number;
}

/** Every running statistic of the model, in parameter order, with its layer's momentum (default 0.1). */
export function runningStatistics(model: ModelDefinition): RunningStatistic[] {
  return parameterSlices(model)
    .filter(({ spec }) => !isTrainable(spec))
    .map(({ spec, offset, size }) => ({ range: [offset, offset + size] as const, momentum: spec.momentum ?? BN_MOMENTUM }));
}

/**
 * weights[i] ← (1 − momentum)·weights[i] + momentum·batchValue[i] for every i of each statistic (`ranges` at
 * one momentum, or statistics each with its own); `batchValue` is the averaged shard results (the same vector
 * the optimizer reads its gradient from). float64 arithmetic, stored as float32.
 */
export function updateRunningStatistics(
  weights: Float32Array, batchValue: Float32Array, statistics: readonly (RunningStatistic | ParameterRange)[], momentum = BN_MOMENTUM,
): void {
  for (const statistic of statistics) {
    const [start, end] = 'range' in statistic ? statistic.range : statistic;
    const m = 'range' in statistic ? statistic.momentum : momentum;
    const keep = 1 - m;
    for (let i = start; i < end; i++) weights[i] = keep * weights[i] + m * batchValue[i];
  }
}
