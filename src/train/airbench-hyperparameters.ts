/**
 * airbench94's training hyper-parameters (its `hyp`), in its decoupled form, and the rates torch.optim.SGD gets
 * from them. Kept in one place so the recipes of airbench94 and airbench93 (./recipe-presets.ts) share them; the
 * parameter groups they make are ./parameter-groups.ts's.
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
