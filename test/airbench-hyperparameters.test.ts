import test from 'ava';
import { AIRBENCH94_HYPERPARAMETERS, airbenchRates } from '../src/train/airbench-hyperparameters.ts';
import { RECIPE_PRESETS } from '../src/train/recipe-presets.ts';
import { stepGroups } from '../src/train/parameter-groups.ts';
import type { ModelDefinition, ParameterSpec } from '../src/model/model-definition.ts';
import { parameterSlices } from '../src/model/parameter-vector.ts';
import { TORCH_REFERENCE } from './fixtures/recipe-reference-inputs.ts';

test('the rates torch.optim.SGD gets are airbench94\'s, to the last bit', (t) => {
  const rates = airbenchRates();
  const { hyper } = TORCH_REFERENCE.sgd;
  t.is(rates.lr, hyper.lr);
  t.is(rates.lrBiases, hyper.lrBiases);
  t.is(rates.weightDecay, hyper.weightDecay);
  t.is(AIRBENCH94_HYPERPARAMETERS.batchNormMomentum, 1 - 0.6);
});

// The first tensors of an airbench model file, in its order.
const specs: ParameterSpec[] = [
  { name: 'normalize/kernel', shape: [1, 1, 3, 3], fanIn: 3, layer: 'normalize', role: 'kernel', frozen: true },
  { name: 'normalize/bias', shape: [3], fanIn: 3, layer: 'normalize', role: 'bias', frozen: true },
  { name: 'whiten/kernel', shape: [2, 2, 3, 24], fanIn: 12, layer: 'whiten', role: 'kernel', frozen: true },
  { name: 'whiten/bias', shape: [24], fanIn: 12, layer: 'whiten', role: 'bias' },
  { name: 'block1_conv1/kernel', shape: [3, 3, 24, 64], fanIn: 216, layer: 'block1_conv1', role: 'kernel' },
  { name: 'block1_norm1/beta', shape: [64], fanIn: 216, layer: 'block1_norm1', role: 'beta' },
  { name: 'block1_norm1/moving_mean', shape: [64], fanIn: 216, kind: 'running-mean', layer: 'block1_norm1', role: 'moving_mean' },
  { name: 'block1_norm1/moving_variance', shape: [64], fanIn: 216, kind: 'running-variance', layer: 'block1_norm1', role: 'moving_variance' },
  { name: 'block1_conv2/kernel', shape: [3, 3, 64, 64], fanIn: 576, layer: 'block1_conv2', role: 'kernel' },
  { name: 'block1_norm2/beta', shape: [64], fanIn: 576, layer: 'block1_norm2', role: 'beta' },
  { name: 'dense/kernel', shape: [64, 10], fanIn: 64, layer: 'dense', role: 'kernel' },
];
const slices = parameterSlices({ parameters: specs } as unknown as ModelDefinition);

test('airbench\'s parameter groups from its recipe: batch-norm biases at 64× lr, the rest at lr, the whitening bias for 3 epochs, frozen tensors and running statistics in neither', (t) => {
  const at = (name: string) => slices.find((s) => s.spec.name === name)!;
  const range = (name: string) => [at(name).offset, at(name).offset + at(name).size];
  const rates = airbenchRates();
  const preset = RECIPE_PRESETS.airbench94;
  const settings = { lr: preset.lr!, biasLrScale: preset.biasLrScale!, weightDecay: preset.weightDecay!, layerEpochs: preset.layerEpochs! };
  const factor = (base: number) => base * 0.5;
  const { groups: [biases, others], skip } = stepGroups(slices, settings, 3, factor);
  t.deepEqual(biases.ranges, [range('block1_norm1/beta'), range('block1_norm2/beta')]);
  t.deepEqual(others.ranges, [[at('whiten/bias').offset, at('block1_conv1/kernel').offset + at('block1_conv1/kernel').size], range('block1_conv2/kernel'), range('dense/kernel')], 'merged where adjacent');
  t.deepEqual(skip, [[0, at('whiten/kernel').offset + at('whiten/kernel').size], [at('block1_norm1/moving_mean').offset, at('block1_norm1/moving_variance').offset + 64]]);
  t.is(biases.lr, rates.lrBiases * 0.5, 'the bias group\'s base rate is lr × 64, as airbench computes lr_biases');
  t.true(Math.abs(biases.weightDecay - rates.weightDecay / rates.lrBiases) <= 1e-15 * biases.weightDecay);
  t.is(others.lr, rates.lr * 0.5);
  t.true(Math.abs(others.weightDecay - rates.weightDecay / rates.lr) <= 1e-15 * others.weightDecay);
  const later = stepGroups(slices, settings, 4, factor).groups[1];
  t.deepEqual(later.ranges[0], range('block1_conv1/kernel'), 'epoch 4: the whitening bias is frozen');
});
