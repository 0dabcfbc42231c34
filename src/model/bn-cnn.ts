import * as tf from '@tensorflow/tfjs-core';
import { EVAL_CONTEXT, type ForwardContext, type LayerSummary, type ModelDefinition, type ParameterSpec } from './model-definition.ts';
import { dropoutMask } from './dropout-mask.ts';
import { BN_EPSILON, BN_MOMENTUM, batchNormReluTraining } from './batch-norm.ts';

/**
 * A stronger CNN than the tutorial's, in the usual CIFAR-10 style: stages of padded ('same') 3×3 convolutions,
 * each followed by batch norm and ReLU, a 2×2 max-pool after every stage, then dropout and one dense layer:
 *
 *   bn-cnn: [conv 32, conv 32] pool [conv 64, conv 64] pool [conv 128] pool → flatten 2048 → dropout 0.25 → dense 10
 *
 * Convolutions have no bias (batch norm's beta is one). Batch norm is PyTorch's BatchNorm2d: in training the
 * shard's own batch statistics (biased variance, eps 1e-5); in evaluation the running statistics, which live in
 * the flat vector as non-trainable entries and are updated by the coordinator (src/train/batch-norm-state.ts).
 * Dropout masks are seeded per (run seed, step, image) (./dropout-mask.ts).
 */
export interface BnCnnConfig {
  readonly name: string;
  /** Output channels of each convolution, per stage; a 2×2 max-pool ends every stage. */
  readonly stages: readonly (readonly number[])[];
  readonly dropout: number;
}


interface ConvLayer { readonly index: number; readonly cin: number; readonly cout: number; readonly size: number; readonly poolAfter: boolean }

export function bnCnn(config: BnCnnConfig): ModelDefinition {
  const [height, width, channels] = [32, 32, 3];
  const convs: ConvLayer[] = [];
  let cin = channels;
  let size = height;
  for (const stage of config.stages) {
    stage.forEach((cout, i) => {
      convs.push({ index: convs.length + 1, cin, cout, size, poolAfter: i === stage.length - 1 });
      cin = cout;
    });
    size /= 2;
  }
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`${config.name}: too many pooling stages for ${height}×${width} inputs.`);
  const features = size * size * cin;
  const classes = 10;

  const parameters: ParameterSpec[] = [];
  for (const c of convs) {
    const fanIn = 9 * c.cin;
    parameters.push(
      { name: `conv${c.index}/kernel`, shape: [3, 3, c.cin, c.cout], fanIn, layer: `conv${c.index}`, role: 'kernel' },
      { name: `bn${c.index}/gamma`, shape: [c.cout], fanIn, init: 'ones', layer: `bn${c.index}`, role: 'gamma' },
      { name: `bn${c.index}/beta`, shape: [c.cout], fanIn, init: 'zeros', layer: `bn${c.index}`, role: 'beta' },
      { name: `bn${c.index}/moving_mean`, shape: [c.cout], fanIn, init: 'zeros', kind: 'running-mean', layer: `bn${c.index}`, role: 'moving_mean' },
      { name: `bn${c.index}/moving_variance`, shape: [c.cout], fanIn, init: 'ones', kind: 'running-variance', layer: `bn${c.index}`, role: 'moving_variance' },
    );
  }
  parameters.push(
    { name: 'fc/kernel', shape: [features, classes], fanIn: features, layer: 'fc', role: 'kernel' },
    { name: 'fc/bias', shape: [classes], fanIn: features, layer: 'fc', role: 'bias' },
  );

  function logits(params: readonly tf.Tensor[], x: tf.Tensor4D, context: ForwardContext = EVAL_CONTEXT): tf.Tensor2D {
    const n = x.shape[0];
    let h: tf.Tensor4D = x;
    let p = 0;
    for (const c of convs) {
      const [kernel, gamma, beta, runningMean, runningVariance] = params.slice(p, p + 5) as tf.Tensor1D[];
      h = tf.conv2d(h, kernel as unknown as tf.Tensor4D, 1, 'same');
      if (context.training) {
        const at = p;
        h = batchNormReluTraining(h, gamma, beta, BN_EPSILON, (stats) => {
          context.batchStatistic?.(at + 3, stats.mean);
          context.batchStatistic?.(at + 4, stats.unbiasedVariance);
        });
      } else {
        h = tf.relu(tf.batchNorm(h, runningMean, runningVariance, beta, gamma, BN_EPSILON));
      }
      if (c.poolAfter) h = tf.maxPool(h, 2, 2, 'valid');
      p += 5;
    }
    let f: tf.Tensor2D = tf.reshape(h, [n, features]);
    if (context.training && context.dropout && config.dropout > 0) {
      const { seed, step, images } = context.dropout;
      if (images.length !== n) throw new RangeError(`Dropout needs one image index per row: got ${images.length} for ${n} images.`);
      f = tf.mul(f, tf.tensor2d(dropoutMask(seed, step, images, features, config.dropout), [n, features]));
    }
    return tf.fused.matMul({ a: f, b: params[p] as tf.Tensor2D, bias: params[p + 1] }) as tf.Tensor2D;
  }

  const summary: LayerSummary[] = [];
  for (const c of convs) {
    summary.push(
      { name: `conv${c.index}`, type: 'Conv2D', outputShape: [-1, c.size, c.size, c.cout], parameters: 9 * c.cin * c.cout },
      { name: `bn${c.index}`, type: 'BatchNorm + ReLU', outputShape: [-1, c.size, c.size, c.cout], parameters: 4 * c.cout },
    );
    if (c.poolAfter) summary.push({ name: `pool${c.index}`, type: 'MaxPool2D', outputShape: [-1, c.size / 2, c.size / 2, c.cout], parameters: 0 });
  }
  summary.push(
    { name: 'flatten', type: 'Flatten', outputShape: [-1, features], parameters: 0 },
    { name: 'dropout', type: `Dropout ${config.dropout}`, outputShape: [-1, features], parameters: 0 },
    { name: 'fc', type: 'Dense', outputShape: [-1, classes], parameters: features * classes + classes },
  );

  return {
    name: config.name,
    inputShape: [height, width, channels],
    classes,
    parameters,
    logits,
    kerasTopology: () => ({
      class_name: 'Sequential',
      config: {
        name: config.name.replace(/-/g, '_'),
        layers: [
          ...convs.flatMap((c) => [
            kerasConv(`conv${c.index}`, c.cout, c.index === 1 ? [height, width, channels] : undefined),
            kerasBatchNorm(`bn${c.index}`),
            { class_name: 'Activation', config: { name: `relu${c.index}`, trainable: true, dtype: 'float32', activation: 'relu' } },
            ...(c.poolAfter ? [kerasPool(`pool${c.index}`)] : []),
          ]),
          { class_name: 'Flatten', config: { name: 'flatten', trainable: true, dtype: 'float32', data_format: 'channels_last' } },
          { class_name: 'Dropout', config: { name: 'dropout', trainable: true, dtype: 'float32', rate: config.dropout, noise_shape: null, seed: null } },
          kerasDense('fc', classes),
        ],
      },
      keras_version: 'tfjs-layers 4.22.0',
      backend: 'tensor_flow.js',
    }),
    summary: () => [...summary],
  };
}

const KERAS_COMMON = { trainable: true, dtype: 'float32' } as const;

function kerasConv(name: string, filters: number, inputShape?: number[]) {
  return {
    class_name: 'Conv2D',
    config: {
      name, ...KERAS_COMMON, ...(inputShape ? { batch_input_shape: [null, ...inputShape] } : {}),
      filters, kernel_size: [3, 3], strides: [1, 1], padding: 'same', data_format: 'channels_last',
      dilation_rate: [1, 1], activation: 'linear', use_bias: false,
      kernel_initializer: { class_name: 'GlorotUniform', config: { seed: null } },
      bias_initializer: { class_name: 'Zeros', config: {} },
      kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null,
      kernel_constraint: null, bias_constraint: null,
    },
  };
}

function kerasBatchNorm(name: string) {
  return {
    class_name: 'BatchNormalization',
    config: {
      name, ...KERAS_COMMON, axis: -1, momentum: 1 - BN_MOMENTUM, epsilon: BN_EPSILON, center: true, scale: true,
      beta_initializer: { class_name: 'Zeros', config: {} },
      gamma_initializer: { class_name: 'Ones', config: {} },
      moving_mean_initializer: { class_name: 'Zeros', config: {} },
      moving_variance_initializer: { class_name: 'Ones', config: {} },
      beta_regularizer: null, gamma_regularizer: null, beta_constraint: null, gamma_constraint: null,
    },
  };
}

function kerasPool(name: string) {
  return {
    class_name: 'MaxPooling2D',
    config: { name, ...KERAS_COMMON, pool_size: [2, 2], padding: 'valid', strides: [2, 2], data_format: 'channels_last' },
  };
}

function kerasDense(name: string, units: number) {
  return {
    class_name: 'Dense',
    config: {
      name, ...KERAS_COMMON, units, activation: 'linear', use_bias: true,
      kernel_initializer: { class_name: 'GlorotUniform', config: { seed: null } },
      bias_initializer: { class_name: 'Zeros', config: {} },
      kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null,
      kernel_constraint: null, bias_constraint: null,
    },
  };
}

/** `--model bn-cnn`: 32-32 / 64-64 / 128, batch norm, dropout 0.25 (about 0.29 M parameters). */
export const bnCnnModel = bnCnn({ name: 'bn-cnn', stages: [[32, 32], [64, 64], [128]], dropout: 0.25 });
