import os from 'node:os';
import type { BackendChoice } from '../compute/backend.ts';
import type { AugmentationName } from '../compute/training-recipe.ts';
import type { LrScheduleName } from '../train/lr-schedule.ts';
import type { LossReduction } from '../train/optimizer/optimizer.ts';
import { type OptimizerName, TUTORIAL_RECIPE } from '../train/run-settings.ts';

/** Everything `npm run coordinator` can be told. Defaults live in DEFAULT_TRAIN_OPTIONS, nowhere else. */
export interface TrainOptions {
  /** Folder with data_batch_1..5.bin, test_batch.bin, batches.meta.txt (--data, else $CIFAR10_DIR, else data/cifar-10-batches-bin). */
  data: string;
  /** Network to train (--model). */
  model: string;
  /** Total epochs the run trains (--epochs; may be fractional); on --resume, training continues up to this many. */
  epochs: number;
  /** Images per optimizer step (--batch-size). */
  batchSize: number;
  /** Adam learning rate (--lr). Betas 0.9/0.999 and eps 1e-8 are PyTorch's defaults. */
  lr: number;
  /** Learning-rate schedule (--lr-schedule) and its linear warm-up in epochs (--warmup-epochs, may be fractional). */
  lrSchedule: LrScheduleName;
  warmupEpochs: number;
  /** Weight decay (--weight-decay): Adam's decoupled (AdamW), SGD's coupled torch weight_decay; 0 = none. */
  weightDecay: number;
  /** --optimizer: adam (the tutorial's) or sgd (torch.optim.SGD), with --momentum and --nesterov. */
  optimizer: OptimizerName;
  momentum: number;
  nesterov: boolean;
  /** Batch norm's biases at this multiple of the learning rate (--bn-bias-lr-scale; SGD only). */
  biasLrScale: number;
  /** The loss the gradient is of: the batch's mean (PyTorch's default) or sum (--loss-reduction). */
  lossReduction: LossReduction;
  /** Layers that train only in the first epochs (--train-layer-epochs whiten=3). */
  layerEpochs: string;
  /** airbench's lookahead EMA of the weights (--lookahead). */
  lookahead: boolean;
  /** Test-time augmentation in the final evaluation (--tta). */
  tta: boolean;
  /** Augmentation of the training images (--augmentation). */
  augmentation: AugmentationName;
  /** --augment: short for --augmentation crop-flip (the flag of earlier versions). */
  augment: boolean;
  /** Leave out each epoch's last partial batch (--drop-last). */
  dropLast: boolean;
  /** Label smoothing ε (--label-smoothing). */
  labelSmoothing: number;
  /** Seed for initial weights and each epoch's shuffle (--seed). */
  seed: number;
  /** How many parts each batch is cut into (--shards). Part of the run's identity: results depend on it, never on --workers. */
  shards: number;
  /** Local workers (--workers): with N ≥ 2 the coordinator's thread + N − 1 worker threads, with 1 one worker thread; ignored with --redis. */
  workers: number;
  /** Where the model, checkpoint, metrics.jsonl and eval.json go (--out). */
  out: string;
  /** Train on the first N training images only (--train-limit). */
  trainLimit: number | undefined;
  /** Evaluate on the first N test images only (--test-limit). */
  testLimit: number | undefined;
  /** Compute backend of the workers (--backend): auto picks tfjs-node if it loads, else wasm. */
  backend: BackendChoice;
  /** Continue the run whose checkpoint is in --out (--resume). */
  resume: boolean;
  /** Print the layer table and exit (--summary). */
  summary: boolean;
  /** Redis URL (--redis, else $REDIS_URL): use remote workers instead of local threads. */
  redis: string | undefined;
  /** Give up when a step's shards are not all back after this many seconds (--shard-timeout). */
  shardTimeoutSeconds: number;
  /** Evaluate the test set after training (--no-eval skips it). */
  evaluate: boolean;
  /** Also evaluate the test set after every N epochs, for the curves (--eval-every; 0: only at the end). */
  evalEvery: number;
  /** Start afresh although --out holds a checkpoint (--overwrite). */
  overwrite: boolean;
}

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = {
  data: 'data/cifar-10-batches-bin',
  model: 'tutorial',
  epochs: 10,
  batchSize: 10,
  lr: 1e-3,
  ...TUTORIAL_RECIPE,
  augment: false,
  seed: 1,
  shards: 2,
  workers: Math.max(1, os.availableParallelism()),
  out: 'model',
  trainLimit: undefined,
  testLimit: undefined,
  backend: 'auto',
  resume: false,
  summary: false,
  redis: undefined,
  shardTimeoutSeconds: 600,
  evaluate: true,
  evalEvery: 0,
  overwrite: false,
};
