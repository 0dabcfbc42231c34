// RedisPool on its own, in this process, with one `npm run worker` process: gradients (with the run's
// augmentation and label smoothing) and evaluations are bit-for-bit those of a local ThreadPool, and the pool's
// traffic is binary and about one weights copy per step plus one result per shard.
import test, { type ExecutionContext } from 'ava';
import { writeCifar10Fixture } from './fixtures/cifar10-fixture.ts';
import { REDIS_URL, redisClient, scanKeys, startWorker, testNamespace, until } from './fixtures/redis-harness.ts';
import { RESULT_FORMAT, encodeGradientPayload, encodeResult } from '../src/pool/redis/payload-codec.ts';
import { encodeResultEntry, pushResult } from '../src/pool/redis/result-list.ts';
import { shardResultLength } from '../src/pool/shard-result.ts';
import { loadCifar10 } from '../src/data/cifar10-dataset.ts';
import { modelByName } from '../src/model/model-registry.ts';
import { initialParameters, parameterCount } from '../src/model/parameter-vector.ts';
import { ThreadPool } from '../src/pool/threads/thread-pool.ts';
import { RedisPool } from '../src/pool/redis/redis-pool.ts';
import type { ShardTask } from '../src/pool/worker-pool.ts';
import type { BackendName } from '../src/compute/backend.ts';
import type { TrainingRecipe } from '../src/compute/training-recipe.ts';

/**
 * A RedisPool in this process served by one `npm run worker` process, and a local one-thread ThreadPool to compare
 * it with, on a small data set of 40 training and 30 test images.
 */
async function remoteAndLocal(
  t: ExecutionContext,
  setting: { name: string; concurrency: number; backend: BackendName; shardTimeoutSeconds: number; recipe?: TrainingRecipe },
) {
  const fixture = await writeCifar10Fixture({ perFile: 8, testCount: 30 });
  t.teardown(fixture.cleanup);
  const dataset = await loadCifar10(fixture.dir);
  const model = modelByName('tutorial');
  const P = parameterCount(model);
  const { backend, recipe } = setting;
  const ns = testNamespace(setting.name);
  const worker = await startWorker({ namespace: ns, data: fixture.dir, name: 'w1', concurrency: setting.concurrency });
  t.teardown(() => worker.kill('SIGKILL'));
  const lines: string[] = [];
  const remote = await RedisPool.create({
    url: REDIS_URL, model: model.name, parameterCount: P, dataset, backend, shardTimeoutSeconds: setting.shardTimeoutSeconds, namespace: ns, recipe,
    log: (line) => lines.push(line),
  });
  const local = await ThreadPool.create({ model: model.name, parameterCount: P, dataset, threads: 1, backend, recipe });
  t.teardown(() => local.close());
  /** Closes the RedisPool; the run's keys left in Redis afterwards (none, it should be). */
  const closeRemote = async () => {
    await remote.close();
    const redis = redisClient();
    t.teardown(() => redis.quit());
    return scanKeys(redis, `${ns}:*`);
  };
  return { model, P, worker, remote, local, lines, closeRemote };
}

/** Whether two lists of results hold the same bytes. */
function sameBytes(a: readonly Float32Array[], b: readonly Float32Array[]): boolean {
  const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  return a.length === b.length && a.every((x, i) => bytes(x).equals(bytes(b[i])));
}

test('gradients and evaluations over Redis equal a local thread\'s bit for bit, with the run\'s recipe', async (t) => {
  const recipe = { seed: 11, augmentation: 'crop-flip', labelSmoothing: 0.1, stepsPerEpoch: 2 } as const;
  const { model, P, worker, remote, local, lines, closeRemote } = await remoteAndLocal(t, {
    name: 'pool', concurrency: 2, backend: 'wasm', shardTimeoutSeconds: 60, recipe,
  });
  t.is(remote.backend, 'wasm');
  t.true(remote.describe().includes(`via Redis ${REDIS_URL} (run `), remote.describe());
  t.regex(remote.describe(), /\(run \S+, wasm\)$/);

  const weights = initialParameters(model, 5);
  const tasks = (step: number): ShardTask[] => [
    { step, shard: 0, weightsVersion: step, indices: new Int32Array([3, 17, 22, 9]) },
    { step, shard: 1, weightsVersion: step, indices: new Int32Array([0, 39, 12]) },
    { step, shard: 2, weightsVersion: step, indices: new Int32Array([25]) },
  ];
  for (const step of [0, 1]) {
    if (step === 1) for (let i = 0; i < weights.length; i += 7) weights[i] += 1e-3;
    await remote.publishWeights(step, weights);
    await local.publishWeights(step, weights);
    const [a, b] = await Promise.all([remote.computeGradients(tasks(step)), local.computeGradients(tasks(step))]);
    t.is(a.length, 3);
    a.forEach((result, i) => t.true(sameBytes([result], [b[i]]), `step ${step} shard ${i}`));
  }
  const evalTasks = [{ weightsVersion: 1, start: 0, end: 20 }, { weightsVersion: 1, start: 20, end: 30 }];
  t.deepEqual(await remote.evaluate(evalTasks), await local.evaluate(evalTasks));

  const traffic = remote.trafficStats();
  t.true(traffic.weightsBytes < 2 * (P * 4 + 1024), `weights ${traffic.weightsBytes} bytes for 2 versions`);
  t.true(traffic.resultBytes < 6 * ((P + 2) * 4 + 1024) + 4096, `results ${traffic.resultBytes} bytes`);
  t.is(traffic.jobs, 8);
  t.deepEqual(remote.rejectedResults(), {});
  t.regex(worker.output(), /serving run \S+ \(model tutorial, backend wasm, 2 threads, 40 training images, crop-flip augmentation, label smoothing 0\.1\)/);

  t.deepEqual(await closeRemote(), []);
  t.regex(lines.join('\n'), /Run \S+ announced/);
});

test('the next step\'s shards handed out ahead: same bytes; a different next call and an evaluation take them back instead of waiting on them', async (t) => {
  // One job at a time, computed on the worker's own thread: a job it holds ahead leaves it no room for another.
  const { model, remote, local, lines, closeRemote } = await remoteAndLocal(t, { name: 'ahead', concurrency: 1, backend: 'fused', shardTimeoutSeconds: 30 });
  const tasks = (step: number, offset = 0): ShardTask[] => [
    { step, shard: 0, weightsVersion: step, indices: new Int32Array([3 + offset, 17, 22, step]) },
    { step, shard: 1, weightsVersion: step, indices: new Int32Array([0, 39 - offset, 12]) },
  ];
  const weights = initialParameters(model, 5);
  // Steps 0 and 1 as the trainer runs them; step 2 then comes with other shards than announced; step 3's
  // shards, handed out ahead, are followed by an evaluation instead.
  const plan: { step: number; now: ShardTask[]; next: ShardTask[] }[] = [
    { step: 0, now: tasks(0), next: tasks(1) },
    { step: 1, now: tasks(1), next: tasks(2) },
    { step: 2, now: tasks(2, 1), next: tasks(3) },
  ];
  for (const { step, now, next } of plan) {
    for (let i = step; i < weights.length; i += 11) weights[i] += 1e-3;
    await remote.publishWeights(step, weights);
    await local.publishWeights(step, weights);
    t.true(sameBytes(await remote.computeGradients(now, next), await local.computeGradients(now)), `step ${step}`);
  }
  const evalTasks = [{ weightsVersion: 2, start: 0, end: 30 }];
  t.deepEqual(await remote.evaluate(evalTasks), await local.evaluate(evalTasks));
  t.deepEqual(Object.keys(remote.rejectedResults()).filter((reason) => reason !== 'late'), [], 'at most late results of jobs taken back');
  t.notRegex(lines.join('\n'), /Waiting \d+ s for/);
  t.deepEqual(await closeRemote(), []);
});

test('a bad result of a superseded attempt is rejected without a new attempt: the current one is already out', async (t) => {
  // No worker at first: the shards' jobs wait in the queue while bad results come in for them.
  const fixture = await writeCifar10Fixture({ perFile: 8, testCount: 30 });
  t.teardown(fixture.cleanup);
  const dataset = await loadCifar10(fixture.dir);
  const model = modelByName('tutorial');
  const P = parameterCount(model);
  const ns = testNamespace('stale');
  const lines: string[] = [];
  const remote = await RedisPool.create({ url: REDIS_URL, model: model.name, parameterCount: P, dataset, backend: 'fused', shardTimeoutSeconds: 60, namespace: ns, log: (line) => lines.push(line) });
  const redis = redisClient();
  t.teardown(() => redis.quit());
  const weights = initialParameters(model, 3);
  await remote.publishWeights(0, weights);
  const tasks: ShardTask[] = [
    { step: 0, shard: 0, weightsVersion: 0, indices: new Int32Array([1, 2, 3]) },
    { step: 0, shard: 1, weightsVersion: 0, indices: new Int32Array([4, 5]) },
  ];
  const pending = remote.computeGradients(tasks);
  const rogue = (job: string) => {
    const payload = encodeGradientPayload(new Float32Array(shardResultLength(P) + 1)); // one value too many
    const envelope = encodeResult({ format: RESULT_FORMAT, runId: remote.keys.runId, jobId: job, worker: 'rogue', kind: 'gradient', step: 0, shard: 0, weightsVersion: 0, payload });
    return pushResult(redis, remote.keys, encodeResultEntry(job, 'rogue', envelope));
  };
  const said = (pattern: RegExp) => until(async () => lines.some((line) => pattern.test(line)), 10_000, `a line like ${pattern}`);

  await rogue('g1-0-1');
  await said(/job g1-0-1\) from worker "rogue": it holds 81305 values, expected 81304\. Computing it again \(attempt 2\)/);
  await rogue('g1-0-1'); // late, for the attempt just replaced
  await said(/job g1-0-1\) from worker "rogue": .* Attempt 2 is already on its way\./);

  const worker = await startWorker({ namespace: ns, data: fixture.dir, name: 'w1', concurrency: 1 });
  t.teardown(() => worker.kill('SIGKILL'));
  const local = await ThreadPool.create({ model: model.name, parameterCount: P, dataset, threads: 1, backend: 'fused' });
  t.teardown(() => local.close());
  await local.publishWeights(0, weights);
  t.true(sameBytes(await pending, await local.computeGradients(tasks)), 'the shard came from its second attempt, computed once');
  t.notRegex(lines.join('\n'), /attempt 3/);
  t.deepEqual(remote.rejectedResults(), { 'wrong-length': 2 });
  await remote.close();
  t.deepEqual(await scanKeys(redis, `${ns}:*`), []);
});
