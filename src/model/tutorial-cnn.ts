import * as tf from '@tensorflow/tfjs-core';
import type { LayerSummary, ModelDefinition, ParameterSpec } from './model-definition.ts';

/**
 * The PyTorch CIFAR-10 tutorial's network, exactly:
 * conv 3→6 (3×3, valid) → ReLU → max-pool 2 → conv 6→16 (3×3) → ReLU → max-pool 2 → flatten (576)
 * → dense 120 → ReLU → dense 84 → ReLU → dense 10 (logits). 81,302 parameters.
 * Layout is NHWC (TensorFlow.js), so flatten orders features height, width, channel.
 */
const PARAMETERS: readonly ParameterSpec[] = [
  { name: 'conv1/kernel', shape: [3, 3, 3, 6], fanIn: 27 },
  { name: 'conv1/bias', shape: [6], fanIn: 27 },
  { name: 'conv2/kernel', shape: [3, 3, 6, 16], fanIn: 54 },
  { name: 'conv2/bias', shape: [16], fanIn: 54 },
  { name: 'fc1/kernel', shape: [576, 120], fanIn: 576 },
  { name: 'fc1/bias', shape: [120], fanIn: 576 },
  { name: 'fc2/kernel', shape: [120, 84], fanIn: 120 },
  { name: 'fc2/bias', shape: [84], fanIn: 120 },
  { name: 'fc3/kernel', shape: [84, 10], fanIn: 84 },
  { name: 'fc3/bias', shape: [10], fanIn: 84 },
];

function logits(params: readonly tf.Tensor[], x: tf.Tensor4D): tf.Tensor2D {
  const [w1, b1, w2, b2, w3, b3, w4, b4, w5, b5] = params;
  let h = tf.fused.conv2d({ x, filter: w1 as tf.Tensor4D, strides: 1, pad: 'valid', bias: b1, activation: 'relu' });
  h = tf.maxPool(h, 2, 2, 'valid');
  h = tf.fused.conv2d({ x: h, filter: w2 as tf.Tensor4D, strides: 1, pad: 'valid', bias: b2, activation: 'relu' });
  h = tf.maxPool(h, 2, 2, 'valid');
  let f: tf.Tensor2D = tf.reshape(h, [h.shape[0], 576]);
  f = tf.fused.matMul({ a: f, b: w3 as tf.Tensor2D, bias: b3, activation: 'relu' }) as tf.Tensor2D;
  f = tf.fused.matMul({ a: f, b: w4 as tf.Tensor2D, bias: b4, activation: 'relu' }) as tf.Tensor2D;
  return tf.fused.matMul({ a: f, b: w5 as tf.Tensor2D, bias: b5 }) as tf.Tensor2D;
}

function conv(name: string, filters: number, inputShape?: number[]) {
  return {
    class_name: 'Conv2D',
    config: {
      name, trainable: true, dtype: 'float32', ...(inputShape ? { batch_input_shape: [null, ...inputShape] } : {}),
      filters, kernel_size: [3, 3], strides: [1, 1], padding: 'valid', data_format: 'channels_last',
      dilation_rate: [1, 1], activation: 'relu', use_bias: true,
      kernel_initializer: { class_name: 'GlorotUniform', config: { seed: null } },
      bias_initializer: { class_name: 'Zeros', config: {} },
      kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null,
      kernel_constraint: null, bias_constraint: null,
    },
  };
}

function pool(name: string) {
  return {
    class_name: 'MaxPooling2D',
    config: { name, trainable: true, dtype: 'float32', pool_size: [2, 2], padding: 'valid', strides: [2, 2], data_format: 'channels_last' },
  };
}

function dense(name: string, units: number, activation: 'relu' | 'linear') {
  return {
    class_name: 'Dense',
    config: {
      name, trainable: true, dtype: 'float32', units, activation, use_bias: true,
      kernel_initializer: { class_name: 'GlorotUniform', config: { seed: null } },
      bias_initializer: { class_name: 'Zeros', config: {} },
      kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null,
      kernel_constraint: null, bias_constraint: null,
    },
  };
}

const SUMMARY: readonly LayerSummary[] = [
  { name: 'conv1', type: 'Conv2D + ReLU', outputShape: [-1, 30, 30, 6], parameters: 168 },
  { name: 'pool1', type: 'MaxPool2D', outputShape: [-1, 15, 15, 6], parameters: 0 },
  { name: 'conv2', type: 'Conv2D + ReLU', outputShape: [-1, 13, 13, 16], parameters: 880 },
  { name: 'pool2', type: 'MaxPool2D', outputShape: [-1, 6, 6, 16], parameters: 0 },
  { name: 'flatten', type: 'Flatten', outputShape: [-1, 576], parameters: 0 },
  { name: 'fc1', type: 'Dense + ReLU', outputShape: [-1, 120], parameters: 69_240 },
  { name: 'fc2', type: 'Dense + ReLU', outputShape: [-1, 84], parameters: 10_164 },
  { name: 'fc3', type: 'Dense', outputShape: [-1, 10], parameters: 850 },
];

export const tutorialCnn: ModelDefinition = {
  name: 'tutorial',
  inputShape: [32, 32, 3],
  classes: 10,
  parameters: PARAMETERS,
  logits,
  kerasTopology: () => ({
    class_name: 'Sequential',
    config: {
      name: 'tutorial_cnn',
      layers: [
        conv('conv1', 6, [32, 32, 3]), pool('pool1'), conv('conv2', 16), pool('pool2'),
        { class_name: 'Flatten', config: { name: 'flatten', trainable: true, dtype: 'float32', data_format: 'channels_last' } },
        dense('fc1', 120, 'relu'), dense('fc2', 84, 'relu'), dense('fc3', 10, 'linear'),
      ],
    },
    keras_version: 'tfjs-layers 4.22.0',
    backend: 'tensor_flow.js',
  }),
  summary: () => [...SUMMARY],
};
