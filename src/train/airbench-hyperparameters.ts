import type { ParameterSlice } from '../model/parameter-vector.ts';
import type { ParameterRange } from './optimizer/optimizer.ts';
import type { ParameterGroup } from './sgd.ts';

/**
 * airbench94's training hyper-parameters (its `hyp`), in its decoupled form, and how they become torch.optim.SGD's
 * parameter groups on the flat vector. Kept in one place so the models airbench94 and airbench93 share them.
 */
export interface AirbenchHyperparameters {
  readonly batchSize: number;
  /** Fractional epochs: ceil(stepsPerEpoch × epochs) steps (batch-plan totalTrainingSteps). */
  readonly epochs: number;
  /** Learning rate per 1024 examples, decoupled from the momentum. */
  readonly lr: number;
  readonly momentum: number;
  /** Weight decay per 1024 examples, decoupled from the learning rate. */
  readonly weightDecay: number;
  /** Batch norm's biases train at this multiple of the learning rate (not of the weight decay). */
  readonly biasScaler: number;
  readonly labelSmoothing: number;
  /** The whitening layer's bias trains in the first this many epochs only. */
  readonly whitenBiasEpochs: number;
  /** Weight of the batch's statistic in the running one, PyTorch's convention (airbench: BatchNorm2d(momentum = 1 − 0.6)). */
  readonly batchNormMomentum: number;
  readonly batchNormEpsilon: number;
}

export const AIRBENCH94_HYPERPARAMETERS: AirbenchHyperparameters = {
  batchSize: 1024,
  epochs: 9.9,
  lr: 11.5,
  momentum: 0.85,
  weightDecay: 0.0153,
  biasScaler: 64,
  labelSmoothing: 0.2,
  whitenBiasEpochs: 3,
  batchNormMomentum: 1 - 0.6,
  batchNormEpsilon: 1e-12,
};

/** airbench93 (widths 64/128/128): the same recipe over 11 epochs (528 steps); 93.0% mean in airbench's own runs. */
export const AIRBENCH93_HYPERPARAMETERS: AirbenchHyperparameters = { ...AIRBENCH94_HYPERPARAMETERS, epochs: 11 };

/** The rates torch.optim.SGD gets (airbench's main): lr and weight decay undone from their decoupled form. */
export interface AirbenchRates {
  readonly lr: number;
  readonly lrBiases: number;
  /** The decay per step of a weight (lr × weight_decay): each group's weight_decay is this ÷ its own lr. */
  readonly weightDecay: number;
}

/**
 * kilostep_scale = 1024·(1 + 1/(1 − momentum)); lr = lr/kilostep_scale; wd = weightDecay·batchSize/kilostep_scale;
 * lr_biases = lr·biasScaler — float64, in airbench's order.
 */
export function airbenchRates(h: AirbenchHyperparameters = AIRBENCH94_HYPERPARAMETERS): AirbenchRates {
  const kilostepScale = 1024 * (1 + 1 / (1 - h.momentum));
  const lr = h.lr / kilostepScale;
  return { lr, lrBiases: lr * h.biasScaler, weightDecay: (h.weightDecay * h.batchSize) / kilostepScale };
}

/**
 * What a tensor is to airbench's optimizer:
 * - 'norm-bias': a batch-norm bias (airbench's `norm_biases`: lr_biases, weight_decay = wd / lr_biases);
 * - 'whitening-bias': the whitening convolution's bias (with the others, for the first whitenBiasEpochs epochs);
 * - 'other': every other trained tensor (lr, weight_decay = wd / lr);
 * - 'frozen': not trained (the whitening kernel, the normalisation layer) — but still averaged by the lookahead;
 * - undefined: not a parameter at all (batch norm's running statistics: see batch-norm-state.ts).
 */
export type AirbenchRole = 'norm-bias' | 'whitening-bias' | 'other' | 'frozen';

/** Layer names of the airbench model files the roles are read from. */
export interface AirbenchLayerNames {
  /** The frozen 1×1 normalisation convolution (both tensors frozen). */
  readonly normalization: string;
  /** The 2×2 whitening convolution (kernel frozen, bias trained for whitenBiasEpochs). */
  readonly whitening: string;
}

export const AIRBENCH_LAYER_NAMES: AirbenchLayerNames = { normalization: 'normalize', whitening: 'whiten' };

/**
 * The role of a tensor from its Keras weight name (`layer/kernel`, `layer/bias`, `layer/beta`, …) and kind.
 * Batch norm's `beta` is its bias; airbench's batch norms have no trained scale (Keras scale=false: no gamma).
 */
export function airbenchRole(slice: Pick<ParameterSlice, 'spec'>, layers: AirbenchLayerNames = AIRBENCH_LAYER_NAMES): AirbenchRole | undefined {
  const { name, kind } = slice.spec;
  if ((kind ?? 'parameter') !== 'parameter') return undefined;
  const [layer, weight] = [name.slice(0, name.lastIndexOf('/')), name.slice(name.lastIndexOf('/') + 1)];
  if (layer === layers.normalization) return 'frozen';
  if (layer === layers.whitening) return weight === 'bias' ? 'whitening-bias' : 'frozen';
  if (weight === 'gamma') return 'frozen';
  if (weight === 'beta') return 'norm-bias';
  return 'other';
}

/**
 * airbench's two parameter groups for one step of epoch `epoch` (1-based) at the schedule's `lrFactor`:
 * norm biases at lr_biases·factor with weight_decay = wd/lr_biases; the rest (and the whitening bias while
 * epoch ≤ whitenBiasEpochs) at lr·factor with wd/lr. Frozen tensors are in neither. Ranges merged in order.
 */
export function airbenchParameterGroups(
  slices: readonly ParameterSlice[],
  epoch: number,
  lrFactor: number,
  h: AirbenchHyperparameters = AIRBENCH94_HYPERPARAMETERS,
  roleOf: (slice: ParameterSlice) => AirbenchRole | undefined = (s) => airbenchRole(s),
): ParameterGroup[] {
  const rates = airbenchRates(h);
  const biases: ParameterRange[] = [];
  const others: ParameterRange[] = [];
  const add = (ranges: ParameterRange[], { offset, size }: ParameterSlice) => {
    const last = ranges[ranges.length - 1];
    if (last && last[1] === offset) ranges[ranges.length - 1] = [last[0], offset + size];
    else ranges.push([offset, offset + size]);
  };
  for (const slice of slices) {
    const role = roleOf(slice);
    if (role === 'norm-bias') add(biases, slice);
    else if (role === 'other' || (role === 'whitening-bias' && epoch <= h.whitenBiasEpochs)) add(others, slice);
  }
  return [
    { name: 'norm-biases', ranges: biases, lr: rates.lrBiases * lrFactor, weightDecay: rates.weightDecay / rates.lrBiases },
    { name: 'others', ranges: others, lr: rates.lr * lrFactor, weightDecay: rates.weightDecay / rates.lr },
  ];
}
