import test from 'ava';
import { writeCifar10Fixture } from './fixtures/cifar10-fixture.ts';
import { loadCifar10 } from '../src/data/cifar10-dataset.ts';
import { recordRun, settingsFor } from './helpers/training-run.ts';
import { ThreadPool } from '../src/pool/threads/thread-pool.ts';
import { evaluateTestSet } from '../src/eval/test-evaluation.ts';
import { initialParameters } from '../src/model/parameter-vector.ts';
import { tutorialCnn } from '../src/model/tutorial-cnn.ts';

test('weights after every step are byte-identical with 1, 2, 3 and 8 worker threads', async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 9, testCount: 10 }); // 45 training images: 5 steps per epoch, the last one short
  t.teardown(fixture.cleanup);
  const dataset = await loadCifar10(fixture.dir);
  const settings = settingsFor(dataset, { batchSize: 10, shards: 3, epochs: 2 });

  const reference = await recordRun(dataset, settings, { threads: 1 });
  t.is(reference.stepHashes.length, 10);
  t.is(new Set(reference.stepHashes).size, 10, 'every step changes the weights');
  for (const threads of [2, 3, 8]) {
    const run = await recordRun(dataset, settings, { threads });
    t.deepEqual(run.stepHashes, reference.stepHashes, `${threads} threads`);
  }
});

test('the shard count is part of the run: another cut of the batch gives (slightly) other weights', async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 4, testCount: 10 });
  t.teardown(fixture.cleanup);
  const dataset = await loadCifar10(fixture.dir);
  const a = await recordRun(dataset, settingsFor(dataset, { shards: 1, epochs: 1 }), { threads: 2 });
  const b = await recordRun(dataset, settingsFor(dataset, { shards: 4, epochs: 1 }), { threads: 2 });
  t.notDeepEqual(a.stepHashes, b.stepHashes);
  // …but only by float rounding: the same maths, summed in another grouping.
  let maxDiff = 0;
  for (let i = 0; i < a.weights.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a.weights[i] - b.weights[i]));
  t.true(maxDiff < 1e-4, `max difference ${maxDiff}`);
});

test("the coordinator's thread computing one worker's share (npm run coordinator's pool) changes no byte", async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 9, testCount: 1200 }); // 3 evaluation chunks of 500
  t.teardown(fixture.cleanup);
  const dataset = await loadCifar10(fixture.dir);
  const settings = settingsFor(dataset, { batchSize: 10, shards: 3, epochs: 1 });
  const reference = await recordRun(dataset, settings, { threads: 1 });
  // 1: this thread alone, no worker thread (a remote worker with --concurrency 1).
  for (const threads of [1, 2, 3]) {
    const run = await recordRun(dataset, settings, { threads, callerComputes: true });
    t.deepEqual(run.stepHashes, reference.stepHashes, `this thread + ${threads - 1}`);
  }

  // Evaluation is shared out the same way: same predictions and loss as threads alone.
  const weights = initialParameters(tutorialCnn, 3);
  const evaluate = async (callerComputes: boolean) => {
    const pool = await ThreadPool.create({ model: 'tutorial', parameterCount: weights.length, dataset, threads: 2, backend: settings.backend, callerComputes });
    try {
      t.regex(pool.describe(), callerComputes ? /this thread \+ 1 worker thread/ : /2 local worker threads/);
      await pool.publishWeights(1, weights);
      return await evaluateTestSet(pool, 1, dataset.test, dataset.classNames);
    } finally {
      await pool.close();
    }
  };
  const [plain, shared] = [await evaluate(false), await evaluate(true)];
  t.is(shared.images, 1200);
  t.deepEqual(shared.confusion, plain.confusion);
  t.is(shared.loss, plain.loss);
});
