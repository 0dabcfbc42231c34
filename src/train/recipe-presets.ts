import type { TrainOptions } from '../options/train-options.ts';
import { AIRBENCH93_HYPERPARAMETERS, AIRBENCH94_HYPERPARAMETERS, type AirbenchHyperparameters, airbenchRates } from './airbench-hyperparameters.ts';

/**
 * A network's own recipe: the defaults `--model NAME` brings with it (any flag given on the command line
 * overrides them). The tutorial and bn-cnn have none: they take the tutorial's defaults (DEFAULT_TRAIN_OPTIONS).
 */
export const RECIPE_PRESETS: Readonly<Record<string, Partial<TrainOptions>>> = {
  airbench94: airbenchRecipe(AIRBENCH94_HYPERPARAMETERS),
  airbench93: airbenchRecipe(AIRBENCH93_HYPERPARAMETERS),
};

/**
 * airbench's recipe (KellerJordan/cifar10-airbench, legacy/airbench94.py) in this trainer's terms: batch 1024
 * without the last partial batch, SGD with Nesterov momentum 0.85 at airbench's undecoupled rates, batch-norm
 * biases at 64× the learning rate, the summed loss with label smoothing 0.2, airbench's learning-rate curve,
 * the whitening layer's bias trained for 3 epochs, lookahead, the flip-and-translate augmentation, and the final
 * evaluation with test-time augmentation. Batch norm's statistics are per shard (the trainer's rule): 4 shards
 * of 256 images.
 */
function airbenchRecipe(h: AirbenchHyperparameters): Partial<TrainOptions> {
  const rates = airbenchRates(h);
  return {
    batchSize: h.batchSize,
    epochs: h.epochs,
    shards: 4,
    optimizer: 'sgd',
    momentum: h.momentum,
    nesterov: true,
    lr: rates.lr,
    weightDecay: rates.weightDecay / rates.lr,
    biasLrScale: h.biasScaler,
    lossReduction: 'sum',
    labelSmoothing: h.labelSmoothing,
    lrSchedule: 'airbench',
    layerEpochs: `whiten=${h.whitenBiasEpochs}`,
    lookahead: true,
    tta: true,
    augmentation: 'flip-translate',
    dropLast: true,
  };
}
