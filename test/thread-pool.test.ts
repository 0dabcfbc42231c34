import test, { type ExecutionContext } from 'ava';
import { ThreadPool } from '../src/pool/threads/thread-pool.ts';
import { ResultBuffers } from '../src/pool/result-buffers.ts';
import { ShardComputer } from '../src/compute/shard-computer.ts';
import { type Cifar10Dataset, loadCifar10 } from '../src/data/cifar10-dataset.ts';
import { tutorialCnn } from '../src/model/tutorial-cnn.ts';
import { initialParameters, parameterCount } from '../src/model/parameter-vector.ts';
import type { ShardTask } from '../src/pool/worker-pool.ts';
import { ShardResultError, WorkerThreadError } from '../src/errors/index.ts';
import { Optimizer } from '../src/train/optimizer/optimizer.ts';
import { writeCifar10Fixture } from './fixtures/cifar10-fixture.ts';

const P = parameterCount(tutorialCnn);
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');

/** A 60-image data set in the real file format, and a ShardComputer on it in this thread to compare with. */
async function smallDataSet(t: ExecutionContext): Promise<{ dataset: Cifar10Dataset; reference: ShardComputer }> {
  const fixture = await writeCifar10Fixture({ perFile: 12, testCount: 10 });
  t.teardown(fixture.cleanup);
  const dataset = await loadCifar10(fixture.dir);
  const reference = await ShardComputer.create(tutorialCnn, dataset, 'fused');
  t.teardown(() => reference.dispose());
  return { dataset, reference };
}

test('result buffers: a buffer given back is handed out again; foreign arrays and second returns are ignored', (t) => {
  const buffers = new ResultBuffers(P);
  const a = buffers.take();
  const b = buffers.take();
  t.is(a.length, P + 2);
  t.not(a, b);
  buffers.give([a, new Float32Array(P + 2), a]);
  t.is(buffers.take(), a, 'reused');
  t.not(buffers.take(), a, 'given back once, handed out once');
});

test('ThreadPool: results are right whether their buffers are recycled or kept, on worker threads and on this one', async (t) => {
  const { dataset, reference } = await smallDataSet(t);
  const pool = await ThreadPool.create({ model: 'tutorial', parameterCount: P, dataset, threads: 3, backend: 'fused', callerComputes: true });
  t.teardown(() => pool.close());

  const tasksOf = (version: number): ShardTask[] => [0, 1, 2, 3].map((shard) => ({
    step: version, shard, weightsVersion: version, indices: Int32Array.from({ length: 5 }, (_, i) => (version * 20 + shard * 5 + i) % 60),
  }));
  const expected = (version: number, weights: Float32Array) => {
    reference.setWeights(weights);
    return tasksOf(version).map((task) => bytes(reference.gradient(task.indices, task.step)));
  };

  const w0 = initialParameters(tutorialCnn, 5);
  await pool.publishWeights(0, w0);
  const first = await pool.computeGradients(tasksOf(0));
  const firstBytes = first.map(bytes);
  t.deepEqual(firstBytes, expected(0, w0));

  // Kept (not recycled): a later step must not write into them.
  const w1 = initialParameters(tutorialCnn, 6);
  await pool.publishWeights(1, w1);
  const second = await pool.computeGradients(tasksOf(1));
  t.deepEqual(second.map(bytes), expected(1, w1));
  t.deepEqual(first.map(bytes), firstBytes, 'results not given back stay as they were');
  t.is(new Set([...first, ...second]).size, 8, 'fresh buffers while none was given back');

  // Recycled: the next step reuses exactly those buffers and overwrites them completely.
  pool.recycle(second);
  const w2 = initialParameters(tutorialCnn, 7);
  await pool.publishWeights(2, w2);
  const third = await pool.computeGradients(tasksOf(2));
  t.true(third.every((buffer) => second.includes(buffer)) && new Set(third).size === 4, 'the recycled buffers, and no new ones');
  t.deepEqual(third.map(bytes), expected(2, w2));
});

test('ThreadPool channels: a thread\'s error fails the call with its message and the channel serves on; overlapping calls share the threads', async (t) => {
  const { dataset, reference } = await smallDataSet(t);
  // Two threads and no share for this one, as a remote worker with --concurrency 2 runs it (calls overlap there).
  const pool = await ThreadPool.create({ model: 'tutorial', parameterCount: P, dataset, threads: 2, backend: 'fused', spinMs: 0 });
  t.teardown(() => pool.close());
  const weights = initialParameters(tutorialCnn, 8);
  await pool.publishWeights(4, weights);
  reference.setWeights(weights);

  const task = (shard: number, weightsVersion = 4): ShardTask => ({ step: 4, shard, weightsVersion, indices: Int32Array.from({ length: 6 }, (_, i) => (shard * 6 + i) % 60) });
  await t.throwsAsync(pool.computeGradients([task(0, 5)]), { message: /asked for weights version 5 but version 4 is published/ });

  const calls = [[0, 1, 2], [3, 4, 5], [6, 7, 8]].map((shards) => pool.computeGradients(shards.map((s) => task(s))));
  const results = await Promise.all(calls);
  t.deepEqual(results.flat().map(bytes), [0, 1, 2, 3, 4, 5, 6, 7, 8].map((s) => bytes(reference.gradient(task(s).indices, 4))));
  const evaluated = await pool.evaluate([{ weightsVersion: 4, start: 0, end: 10 }]);
  const expected = reference.evaluate(0, 10);
  t.deepEqual(evaluated, [{ start: 0, lossSum: expected.lossSum, predictions: expected.predictions }]);
});

test('ThreadPool channels: a worker thread that dies fails the step with an error instead of hanging it', async (t) => {
  const { dataset } = await smallDataSet(t);
  const pool = await ThreadPool.create({ model: 'tutorial', parameterCount: P, dataset, threads: 2, backend: 'fused', callerComputes: true });
  t.teardown(() => pool.close());
  await pool.publishWeights(0, initialParameters(tutorialCnn, 9));
  const tasks: ShardTask[] = [0, 1].map((shard) => ({ step: 0, shard, weightsVersion: 0, indices: Int32Array.of(shard, shard + 2) }));
  t.is((await pool.computeGradients(tasks)).length, 2);
  // The one worker thread goes away (as if it crashed).
  const threads = (pool as unknown as { piscina: { threads: { terminate(): Promise<number> }[] } }).piscina.threads;
  await Promise.all(threads.map((thread) => thread.terminate()));
  const stopped = { instanceOf: WorkerThreadError, message: /A local worker thread stopped \(worker exited with code: 1\).*--resume/ };
  await t.throwsAsync(pool.computeGradients(tasks), stopped);
  await t.throwsAsync(pool.computeGradients(tasks), stopped, 'and so does every later step');
});

test('ThreadPool: a NaN gradient is rejected by the pool\'s own scan, or, with scanFinite off (the coordinator\'s pool), by the Optimizer\'s sum', async (t) => {
  const { dataset } = await smallDataSet(t);
  const poisoned = initialParameters(tutorialCnn, 5);
  poisoned[P - 1] = NaN; // the last bias: every logit, loss and gradient after it turns NaN
  const tasks: ShardTask[] = [0, 1].map((shard) => ({ step: 0, shard, weightsVersion: 0, indices: Int32Array.from([shard, shard + 2, shard + 4]) }));
  const logs: string[] = [];

  const scanning = await ThreadPool.create({ model: 'tutorial', parameterCount: P, dataset, threads: 2, backend: 'fused', callerComputes: true, log: (line) => logs.push(line) });
  t.teardown(() => scanning.close());
  await scanning.publishWeights(0, poisoned);
  const rejected = await t.throwsAsync(scanning.computeGradients(tasks), { instanceOf: ShardResultError });
  t.regex(rejected.message, /local worker thread \(step 0, shard [01]\) holds NaN at position \d+; discarded/);
  t.true(logs.some((line) => /Recomputing \(attempt 2 of 3\)/.test(line)));

  const summing = await ThreadPool.create({ model: 'tutorial', parameterCount: P, dataset, threads: 2, backend: 'fused', callerComputes: true, scanFinite: false });
  t.teardown(() => summing.close());
  await summing.publishWeights(0, poisoned);
  const results = await summing.computeGradients(tasks);
  t.true(results.every((r) => r.length === P + 2 && r.some(Number.isNaN)), 'returned unscanned');
  const optimizer = Optimizer.create({ weights: poisoned.map((w) => (Number.isNaN(w) ? 0 : w)), shards: 2 });
  const before = Float32Array.from(optimizer.weights);
  t.throws(() => optimizer.averageShards(results, 6), { instanceOf: ShardResultError, message: /^Shard result 0 holds NaN at position \d+; discarded\.$/ });
  t.deepEqual(optimizer.weights, before, 'nothing applied');
});

test('ThreadPool: given arrays to write into (the Optimizer\'s slots), results land there on both kinds of worker, byte for byte', async (t) => {
  const { dataset, reference } = await smallDataSet(t);
  const pool = await ThreadPool.create({ model: 'tutorial', parameterCount: P, dataset, threads: 2, backend: 'fused', callerComputes: true });
  t.teardown(() => pool.close());
  const weights = initialParameters(tutorialCnn, 9);
  await pool.publishWeights(0, weights);
  const tasks: ShardTask[] = [0, 1, 2].map((shard) => ({ step: 0, shard, weightsVersion: 0, indices: Int32Array.from([shard, shard + 10, shard + 20]) }));
  const optimizer = Optimizer.create({ weights, shards: 3 });
  const results = await pool.computeGradients(tasks, undefined, optimizer.resultSlots);
  t.true(results.every((r, i) => r === optimizer.resultSlots[i]), 'the very arrays given');
  reference.setWeights(weights);
  t.deepEqual(results.map(bytes), tasks.map((task) => bytes(reference.gradient(task.indices, task.step))));
  pool.recycle(results); // not the pool's: ignored, never handed out as its own
  const own = await pool.computeGradients(tasks);
  t.true(own.every((r) => !optimizer.resultSlots.includes(r)));
});
