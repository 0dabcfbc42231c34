// airbench's recipe ingredients in the trainer, together, on a network with batch norm (bn-cnn): SGD with
// Nesterov momentum and parameter groups, the summed loss, a layer that trains for one epoch only, the lookahead,
// the flip-and-translate augmentation, dropped last batches and a fractional epoch count. The promise holds:
// byte-identical weights for any worker count and through a stop and --resume; and each ingredient does what
// it says (the frozen layer stops moving; the last epoch stops part-way; the lookahead's reset lands).
import test from 'ava';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeCifar10Fixture } from './fixtures/cifar10-fixture.ts';
import { loadCifar10 } from '../src/data/cifar10-dataset.ts';
import { readCheckpoint } from '../src/checkpoint/checkpoint.ts';
import { modelByName } from '../src/model/model-registry.ts';
import { initialParameters, parameterSlices } from '../src/model/parameter-vector.ts';
import { recordRun, settingsFor } from './helpers/training-run.ts';
import type { RunSettings } from '../src/train/run-settings.ts';

const model = modelByName('bn-cnn');
/** The first convolution's kernel, as a tensor of the 'layer that trains for one epoch'. */
const conv1 = parameterSlices(model).find((s) => s.spec.name === 'conv1/kernel')!;

function recipe(dataset: Parameters<typeof settingsFor>[0]): RunSettings {
  return settingsFor(dataset, {
    model: 'bn-cnn', batchSize: 8, shards: 3, epochs: 2.5, dropLast: true, optimizer: 'sgd', momentum: 0.85, nesterov: true,
    lr: 0.01, weightDecay: 5e-4, biasLrScale: 64, lossReduction: 'sum', lrSchedule: 'airbench', layerEpochs: 'conv1=1',
    lookahead: true, augmentation: 'flip-translate', labelSmoothing: 0.2,
  });
}

test.before(() => {
  // The --train-layer-epochs test needs conv1's tensors to say their layer.
  if (conv1.spec.layer !== 'conv1') throw new Error(`bn-cnn's conv1/kernel names layer ${String(conv1.spec.layer)}, not conv1`);
});

test('the airbench ingredients together: weights after every step byte-identical with 1, 2 and 3 worker threads', async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 4, testCount: 10 }); // 20 images: 2 steps of 8 per epoch (4 dropped)
  t.teardown(fixture.cleanup);
  const dataset = await loadCifar10(fixture.dir);
  const settings = recipe(dataset);
  const reference = await recordRun(dataset, settings, { threads: 1 });
  t.is(reference.stepHashes.length, 5, '2.5 epochs of 2 steps are 5 steps: the last epoch stops after 1');
  t.is(new Set(reference.stepHashes).size, 5, 'every step changes the weights');
  for (const threads of [2, 3]) {
    const run = await recordRun(dataset, settings, { threads });
    t.deepEqual(run.stepHashes, reference.stepHashes, `${threads} threads`);
  }
  // conv1 trained in epoch 1 only: from step 3 on only the lookahead (every 5 steps) could still move it.
  const initial = initialParameters(model, settings.seed);
  t.notDeepEqual(reference.weights.subarray(conv1.offset, conv1.offset + conv1.size), initial.subarray(conv1.offset, conv1.offset + conv1.size));
});

test('the airbench ingredients through a stop and --resume: the same weights as a run never stopped', async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 4, testCount: 10 });
  t.teardown(fixture.cleanup);
  const dataset = await loadCifar10(fixture.dir);
  const settings = recipe(dataset);
  const straight = await recordRun(dataset, settings, { threads: 2 });
  for (const stopAfterStep of [1, 3]) {
    const outDir = await fs.mkdtemp(path.join(os.tmpdir(), 'recipe-resume-'));
    t.teardown(() => fs.rm(outDir, { recursive: true, force: true }));
    const first = await recordRun(dataset, settings, { threads: 2, outDir, stopAfterStep });
    t.true(first.stopped);
    const checkpoint = await readCheckpoint(outDir);
    t.truthy(checkpoint.sgd, 'the checkpoint holds SGD\'s momentum');
    t.truthy(checkpoint.lookahead, 'and the lookahead\'s average');
    t.is(checkpoint.adam, undefined);
    const second = await recordRun(dataset, settings, { threads: 1, outDir, resumeFrom: checkpoint });
    t.deepEqual([...first.stepHashes, ...second.stepHashes], straight.stepHashes, `stopped after step ${stopAfterStep}`);
  }
});
