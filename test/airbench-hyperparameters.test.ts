import test from 'ava';
import { AIRBENCH94_HYPERPARAMETERS, airbenchParameterGroups, airbenchRates, airbenchRole } from '../src/train/airbench-hyperparameters.ts';
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
  { name: 'normalize/kernel', shape: [1, 1, 3, 3], fanIn: 3 },
  { name: 'normalize/bias', shape: [3], fanIn: 3 },
  { name: 'whiten/kernel', shape: [2, 2, 3, 24], fanIn: 12 },
  { name: 'whiten/bias', shape: [24], fanIn: 12 },
  { name: 'block1_conv1/kernel', shape: [3, 3, 24, 64], fanIn: 216 },
  { name: 'block1_norm1/beta', shape: [64], fanIn: 216 },
  { name: 'block1_norm1/moving_mean', shape: [64], fanIn: 216, kind: 'running-mean' },
  { name: 'block1_norm1/moving_variance', shape: [64], fanIn: 216, kind: 'running-variance' },
  { name: 'block1_conv2/kernel', shape: [3, 3, 64, 64], fanIn: 576 },
  { name: 'block1_norm2/beta', shape: [64], fanIn: 576 },
  { name: 'dense/kernel', shape: [64, 10], fanIn: 64 },
];
const slices = parameterSlices({ parameters: specs } as unknown as ModelDefinition);

test('airbench\'s parameter groups: batch-norm biases at 64× lr, the rest at lr, the whitening bias for 3 epochs, frozen and running statistics in neither', (t) => {
  t.deepEqual(slices.map((s) => airbenchRole(s)), ['frozen', 'frozen', 'frozen', 'whitening-bias', 'other', 'norm-bias', undefined, undefined, 'other', 'norm-bias', 'other']);
  const at = (name: string) => slices.find((s) => s.spec.name === name)!;
  const range = (name: string) => [at(name).offset, at(name).offset + at(name).size];
  const rates = airbenchRates();
  const [biases, others] = airbenchParameterGroups(slices, 3, 0.5);
  t.deepEqual(biases.ranges, [range('block1_norm1/beta'), range('block1_norm2/beta')]);
  t.deepEqual(others.ranges, [[at('whiten/bias').offset, at('block1_conv1/kernel').offset + at('block1_conv1/kernel').size], range('block1_conv2/kernel'), range('dense/kernel')], 'merged where adjacent');
  t.is(biases.lr, rates.lrBiases * 0.5);
  t.is(biases.weightDecay, rates.weightDecay / rates.lrBiases);
  t.is(others.lr, rates.lr * 0.5);
  t.is(others.weightDecay, rates.weightDecay / rates.lr);
  const [, later] = airbenchParameterGroups(slices, 4, 1);
  t.deepEqual(later.ranges[0], range('block1_conv1/kernel'), 'epoch 4: the whitening bias is frozen');
});
