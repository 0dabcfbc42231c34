import { InvalidOptionError } from '../errors/index.ts';
import { isTrainable, type ParameterSlice } from '../model/parameter-vector.ts';
import type { ParameterRange } from './optimizer/optimizer.ts';
import type { RunSettings } from './run-settings.ts';
import type { ParameterGroup } from './sgd.ts';

/**
 * Which entries of the flat vector the optimizer changes in a given epoch, and at which rates: everything
 * trainable, except frozen tensors (ParameterSpec.frozen), batch norm's running statistics (folded in by
 * batch-norm-state.ts instead) and the tensors of layers whose training epochs are over (--train-layer-epochs,
 * airbench's whitening bias for 3 epochs). Batch norm's biases (role 'beta') form a group of their own at
 * --bn-bias-lr-scale × the learning rate, with the weight decay divided by the same factor, so every group
 * decays by lr·weightDecay per step (airbench's choice, torch's param_groups).
 */
export interface StepGroups {
  /** SGD's groups, in order: batch-norm biases, then every other trained tensor (an empty group is kept). */
  readonly groups: readonly ParameterGroup[];
  /** What the optimizer leaves alone: sorted, disjoint ranges (Adam's skip list). */
  readonly skip: readonly ParameterRange[];
}

/** `layer=N,…` → layer → the epochs it trains in; '' → none. */
export function parseLayerEpochs(text: string): ReadonlyMap<string, number> {
  const out = new Map<string, number>();
  if (text.trim() === '') return out;
  for (const part of text.split(',')) {
    const m = /^\s*([^=\s]+)\s*=\s*(\d+)\s*$/.exec(part);
    if (!m) throw new InvalidOptionError(`--train-layer-epochs takes layer=epochs pairs separated by commas (e.g. whiten=3); got '${text}'.`);
    out.set(m[1], Number(m[2]));
  }
  return out;
}

/**
 * The step groups of epoch `epoch` (1-based); `lrFor(base)` is this step's learning rate of a group whose base
 * rate is `base` (the schedule applied to it, as torch's LambdaLR scales each group's own initial lr).
 */
export function stepGroups(
  slices: readonly ParameterSlice[], settings: Pick<RunSettings, 'lr' | 'biasLrScale' | 'weightDecay' | 'layerEpochs'>, epoch: number,
  lrFor: (base: number) => number,
): StepGroups {
  const layerEpochs = parseLayerEpochs(settings.layerEpochs);
  const biases: ParameterRange[] = [];
  const others: ParameterRange[] = [];
  const skip: ParameterRange[] = [];
  for (const slice of slices) {
    const { spec } = slice;
    const until = spec.layer !== undefined ? layerEpochs.get(spec.layer) : undefined;
    const trained = isTrainable(spec) && !spec.frozen && (until === undefined || epoch <= until);
    if (!trained) append(skip, slice);
    else if (spec.role === 'beta' && settings.biasLrScale !== 1) append(biases, slice);
    else append(others, slice);
  }
  const scale = settings.biasLrScale;
  return {
    groups: [
      { name: 'batch-norm biases', ranges: biases, lr: lrFor(settings.lr * scale), weightDecay: settings.weightDecay / scale },
      { name: 'others', ranges: others, lr: lrFor(settings.lr), weightDecay: settings.weightDecay },
    ],
    skip,
  };
}

/** Adds a slice's range, merged with the last one when adjacent. */
function append(ranges: ParameterRange[], { offset, size }: ParameterSlice): void {
  const last = ranges[ranges.length - 1];
  if (last && last[1] === offset) ranges[ranges.length - 1] = [last[0], offset + size];
  else ranges.push([offset, offset + size]);
}
