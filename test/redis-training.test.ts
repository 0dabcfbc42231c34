// Coordinator and `npm run worker` processes over the real Redis (TEST_REDIS_URL, else 127.0.0.1:6379): the final weights (and the
// evaluation) must be byte-identical to the local-thread run with the same settings, whatever happens to the
// workers, the coordinator, or the results on the way.
import test from 'ava';
import { rm } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker, type Job } from 'bullmq';
import { writeCifar10Fixture, type Cifar10Fixture } from './fixtures/cifar10-fixture.ts';
import {
  REDIS_URL, type Proc, readEval, readWeights, redisClient, runCoordinator, scanKeys, startCoordinator, startWorker, tempDir,
  sleep, testNamespace, trainArgs, until,
} from './fixtures/redis-harness.ts';
import { QUEUE_NAME, RunKeys } from '../src/pool/redis/keys.ts';
import { deleteRunKeys } from '../src/pool/redis/run-cleanup.ts';
import { RESULT_FORMAT, encodeGradientPayload, encodeResult, parseJobData, subjectPosition, taskDigest } from '../src/pool/redis/payload-codec.ts';
import { signResult } from '../src/pool/redis/result-signing.ts';
import { encodeResultEntry, pushResult } from '../src/pool/redis/result-list.ts';
import { shardResultLength } from '../src/pool/shard-result.ts';

const EPOCHS = ['--epochs', '2'];
let fixture: Cifar10Fixture;
let reference: { weights: Buffer; evaluation: unknown };
const cleanups: (() => Promise<unknown> | void)[] = [];

test.before(async () => {
  fixture = await writeCifar10Fixture({ perFile: 20, testCount: 40 }); // 100 training images: 5 steps of 20 per epoch
  const out = tempDir('reference');
  cleanups.push(() => rm(out, { recursive: true, force: true }));
  const run = await runCoordinator(trainArgs(fixture.dir, out, [...EPOCHS, '--workers', '2']), { REDIS_URL: '' });
  if (run.code !== 0) throw new Error(`reference run failed:\n${run.output}`);
  reference = { weights: await readWeights(out), evaluation: await readEval(out) };
});

test.after.always(async () => {
  for (const c of cleanups.reverse()) await c();
  await fixture?.cleanup();
});

function track(proc: Proc): Proc {
  cleanups.push(() => proc.kill('SIGKILL'));
  return proc;
}

function runIdOf(output: string): string {
  const match = /Run (\S+) announced/.exec(output);
  if (!match) throw new Error(`no run id in:\n${output}`);
  return match[1];
}

test('two worker processes, one SIGKILLed in the middle of a job: its shard is computed by the other, the weights and the remote evaluation equal two local threads\' byte for byte, and no key is left', async (t) => {
  const ns = testNamespace('kill-worker');
  const redis = redisClient();
  t.teardown(() => redis.quit());
  t.deepEqual(await scanKeys(redis, `${ns}:*`), []);
  // wSlow sleeps 1.5 s before each job, so it is caught holding one. It serves alone at first (so it surely
  // takes jobs); wFast, one job at a time on its own thread, joins before wSlow is killed.
  const slow = track(await startWorker({ namespace: ns, data: fixture.dir, name: 'wSlow', lockSeconds: 2, env: { TRAINER_TEST_JOB_DELAY_MS: '1500' } }));
  const out = tempDir('kill-worker');
  cleanups.push(() => rm(out, { recursive: true, force: true }));

  const coordinator = track(startCoordinator(trainArgs(fixture.dir, out, [...EPOCHS, '--redis', REDIS_URL]), { TRAINER_NAMESPACE: ns }));
  const keys = new RunKeys(ns, runIdOf((await coordinator.waitFor(/Run \S+ announced/))[0]));
  const prefix = `${keys.prefix}:${QUEUE_NAME}`;
  const heldBySlow = () => until(async () => {
    for (const id of await redis.lrange(`${prefix}:active`, 0, -1)) {
      if ((await redis.hget(`${prefix}:${id}`, 'pb')) === 'wSlow') return id;
    }
    return undefined;
  }, 30_000, 'wSlow to hold a job');
  await heldBySlow();
  const fast = track(await startWorker({ namespace: ns, data: fixture.dir, name: 'wFast', lockSeconds: 2, concurrency: 1 }));
  const held = await heldBySlow();
  slow.kill('SIGKILL');
  t.is(await slow.exited, 137);

  t.is(await coordinator.exited, 0, coordinator.output());
  t.regex(coordinator.output(), /Workers: .*remote workers via Redis/);
  t.regex(coordinator.output(), new RegExp(`Job ${held} \\(step \\d+ shard \\d\\) stalled`));
  t.notRegex(coordinator.output(), /Rejected|Ignored|not used/);
  t.true((await readWeights(out)).equals(reference.weights), 'weights.bin equals the thread-pool run');
  t.deepEqual(await readEval(out), reference.evaluation, 'evaluation over remote workers equals the local one');
  const left = await fast.waitFor(/left run \S+ \(the run has ended\) after (\d+) jobs?/, 10_000);
  t.true(Number(left[1]) > 0);
  t.deepEqual(await scanKeys(redis, `${ns}:*`), [], 'every key of the run is gone');

  // SIGTERM: a worker leaves cleanly.
  fast.kill('SIGTERM');
  t.is(await fast.exited, 143, fast.output());
  t.regex(fast.output(), /stopped\./);
});

test('the coordinator SIGKILLed mid-run and restarted with --resume ends byte-identical and removes the old attempt', async (t) => {
  const ns = testNamespace('kill-coordinator');
  const redis = redisClient();
  t.teardown(() => redis.quit());
  track(await startWorker({ namespace: ns, data: fixture.dir, name: 'wA' }));
  const out = tempDir('kill-coordinator');
  cleanups.push(() => rm(out, { recursive: true, force: true }));
  const args = trainArgs(fixture.dir, out, [...EPOCHS, '--redis', REDIS_URL]);

  const first = track(startCoordinator(args, { TRAINER_NAMESPACE: ns }));
  const oldRun = new RunKeys(ns, runIdOf((await first.waitFor(/Run \S+ announced/))[0]));
  await first.waitFor(/^epoch: 1 /m); // printed after the epoch-1 checkpoint is written
  t.true(existsSync(path.join(out, 'checkpoint.bin')));
  first.kill('SIGKILL'); // somewhere in epoch 2

  t.is(await first.exited, 137);
  t.true((await scanKeys(redis, `${oldRun.prefix}:*`)).length > 0, 'the killed coordinator left its keys');

  const second = await runCoordinator([...args, '--resume'], { TRAINER_NAMESPACE: ns });
  t.is(second.code, 0, second.output);
  t.regex(second.output, /Resuming from .*1 epochs done/);
  t.true((await readWeights(out)).equals(reference.weights), 'weights.bin equals an uninterrupted run');
  // The old attempt's keys: removed at once when the coordinator names its output folder as the run's owner,
  // otherwise by the workers once its announcement has expired.
  await until(async () => (await scanKeys(redis, `${oldRun.prefix}:*`)).length === 0, 40_000, 'the old attempt\'s keys to go');
  t.deepEqual(await scanKeys(redis, `${ns}:*`), []);
  t.truthy(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8'));
});

test('duplicate, late, malformed, wrong-length, NaN, unsigned and badly signed results never reach the weights: each is rejected for what is wrong with it (or ignored once its shard is in), logged with the worker, and recomputed', async (t) => {
  const ns = testNamespace('rogue');
  const secret = 'correct horse battery staple';
  const redis = redisClient();
  t.teardown(() => redis.quit());
  const out = tempDir('rogue');
  cleanups.push(() => rm(out, { recursive: true, force: true }));
  const coordinator = track(startCoordinator(trainArgs(fixture.dir, out, [...EPOCHS, '--redis', REDIS_URL]), { TRAINER_NAMESPACE: ns, TRAINER_SECRET: secret }));
  const keys = new RunKeys(ns, runIdOf((await coordinator.waitFor(/Run \S+ announced/))[0]));
  t.regex(coordinator.output(), /results must be signed with TRAINER_SECRET/);

  // The rogue: a BullMQ worker on the run's queue that answers its first jobs with bad results, then leaves.
  const P = 81302;
  const kinds = ['unsigned', 'bad-signature', 'malformed', 'wrong-length', 'nan', 'late'] as const;
  let served = 0;
  /** The job each of the rogue's results answered, by kind. */
  const answered = new Map<(typeof kinds)[number], string>();
  let releaseFirst!: () => void;
  const firstHeld = new Promise<void>((resolve) => {
    releaseFirst = resolve;
  });
  const rogue = new Worker(
    QUEUE_NAME,
    async (job: Job) => {
      const kind = kinds[served++];
      if (served === 1) await firstHeld; // hold shard 0 of step 0, so the step cannot finish before the duplicate
      const data = parseJobData(job.data);
      const position = subjectPosition(data);
      const version = kind === 'late' ? data.weightsVersion - 1 : data.weightsVersion;
      const values = new Float32Array(shardResultLength(P) + (kind === 'wrong-length' ? 1 : 0));
      if (kind === 'nan') values[5] = Number.NaN;
      const payload = encodeGradientPayload(values);
      const subject = { runId: keys.runId, kind: data.kind, ...position, weightsVersion: version, taskDigest: taskDigest(data) };
      const signature = kind === 'unsigned' ? undefined : signResult(kind === 'bad-signature' ? 'guessed secret' : secret, subject, payload);
      const bytes = kind === 'malformed'
        ? encodeResult({ format: RESULT_FORMAT, runId: keys.runId, jobId: String(job.id), worker: 'rogue', kind: data.kind, ...position, weightsVersion: version, payload }).subarray(0, 200)
        : encodeResult({ format: RESULT_FORMAT, runId: keys.runId, jobId: String(job.id), worker: 'rogue', kind: data.kind, ...position, weightsVersion: version, payload, ...(signature ? { signature } : {}) });
      answered.set(kind, String(job.id));
      await pushResult(redis, keys, encodeResultEntry(String(job.id), 'rogue', bytes));
      if (served >= kinds.length) void rogue.close();
      return { worker: 'rogue' };
    },
    { connection: { host: new URL(REDIS_URL).hostname, port: Number(new URL(REDIS_URL).port || 6379), maxRetriesPerRequest: null }, prefix: keys.prefix, name: 'rogue', concurrency: 1 },
  );
  cleanups.push(() => rogue.close(true));
  await until(async () => served >= 1, 20_000, 'the rogue to take a job');

  // An honest worker computes the other shard of step 0; a second result for that shard then arrives.
  const honest = track(await startWorker({ namespace: ns, data: fixture.dir, name: 'honest', env: { TRAINER_SECRET: secret } }));
  const completed = await until(async () => {
    const reply = (await redis.xrange(keys.events, '-', '+')) as [string, string[]][];
    return reply.map(([, f]) => f).find((f) => f[f.indexOf('event') + 1] === 'completed');
  }, 30_000, 'the honest worker\'s first result');
  const honestJob = completed[completed.indexOf('jobId') + 1];
  await pushResult(redis, keys, encodeResultEntry(honestJob, 'honest', Buffer.from('a second copy')));
  await until(async () => /duplicate result/.test(coordinator.output()), 10_000, 'the duplicate to be seen');
  releaseFirst();

  t.is(await coordinator.exited, 0, coordinator.output());
  const output = coordinator.output();
  t.true((await readWeights(out)).equals(reference.weights), 'no rejected result reached the weights');
  t.deepEqual(await readEval(out), reference.evaluation);
  t.is(served, kinds.length, 'the rogue served its six jobs');
  t.regex(output, /Ignored a duplicate result for step 0 shard \d \(job g1-\d-1\) from worker "honest"/);
  // Each of the rogue's results is accounted for under the rogue's name: rejected for what is wrong with it, or,
  // when the shard was complete before it came, ignored unread. The second happens: the rogue ignores take-backs,
  // so it may answer an attempt that a take-back replaced and the honest worker has finished since.
  const reasons: Record<(typeof kinds)[number], { text: RegExp; counted: string }> = {
    unsigned: { text: /it is not signed/, counted: 'unsigned' },
    'bad-signature': { text: /its signature does not verify/, counted: 'bad-signature' },
    malformed: { text: /the result is not valid msgpack/, counted: 'malformed' },
    'wrong-length': { text: /it holds 81305 values, expected 81304/, counted: 'wrong-length' },
    nan: { text: /Shard result from worker "rogue" holds NaN at position 5\./, counted: 'non-finite' },
    late: { text: /it was computed with weights version -?\d+, the task needs version \d+/, counted: 'late' },
  };
  const lines = output.split('\n');
  let rejectedForContent = 0;
  for (const kind of kinds) {
    const job = answered.get(kind)!;
    const about = lines.filter((line) => line.includes(`(job ${job}) from worker "rogue"`) || line.includes(`of job ${job} from worker "rogue"`));
    const rejected = about.some((line) => /^Rejected the result/.test(line) && reasons[kind].text.test(line));
    const ignored = about.some((line) => /^Ignored a (duplicate|late) result/.test(line));
    t.true(rejected || ignored, `the rogue's ${kind} result (job ${job}) is rejected for it, or ignored as late or duplicate:\n${about.join('\n')}`);
    if (rejected) {
      rejectedForContent += 1;
      t.regex(output, new RegExp(`Results not used during this run: .*\\b1 ${reasons[kind].counted}\\b`));
    }
  }
  t.true(rejectedForContent >= 1, 'at least one bad result was read and rejected for its content');
  t.regex(output, /Results not used during this run: .*\b[1-9]\d* duplicate/, 'the duplicate pushed above, at least');
  await honest.waitFor(/left run/, 10_000);
  t.deepEqual(await scanKeys(redis, `${keys.prefix}:*`), []);
});

test('the coordinator killed during the final evaluation over Redis, then resumed: workers leave the killed attempt, and once they stop no key of either attempt is left', async (t) => {
  const ns = testNamespace('kill-in-eval');
  const redis = redisClient();
  t.teardown(() => redis.quit());
  const env = { TRAINER_TEST_JOB_DELAY_MS: '300' };
  const workers = await Promise.all(['wA', 'wB'].map((name) => startWorker({ namespace: ns, data: fixture.dir, name, env }).then(track)));
  const out = tempDir('kill-in-eval');
  cleanups.push(() => rm(out, { recursive: true, force: true }));
  const args = trainArgs(fixture.dir, out, [...EPOCHS, '--redis', REDIS_URL]);

  // Killed with the evaluation's jobs out (the workers are in the middle of them).
  const first = await runCoordinator(args, { TRAINER_NAMESPACE: ns, TRAINER_TEST_CRASH_AT: 'redis:evaluation-handed-out' });
  t.is(first.code, 137, first.output);
  const oldRun = runIdOf(first.output.match(/Run \S+ announced/)![0]);

  const second = await runCoordinator([...args, '--resume'], { TRAINER_NAMESPACE: ns });
  t.is(second.code, 0, second.output);
  t.deepEqual(await readEval(out), reference.evaluation, 'the resumed run evaluated the final weights');
  const newRun = runIdOf(second.output.match(/Run \S+ announced/)![0]);
  for (const w of workers) {
    // Each left the killed attempt as soon as it saw the resumed one, long before that one ended.
    await w.waitFor(new RegExp(`left run ${newRun}`), 10_000);
    const left = w.output().indexOf(`left run ${oldRun} (its coordinator started again as run ${newRun})`);
    t.true(left >= 0 && left < w.output().indexOf(`left run ${newRun}`), w.output());
  }
  for (const w of workers) w.kill('SIGTERM');
  for (const w of workers) t.is(await w.exited, 143, w.output());
  await until(async () => (await scanKeys(redis, `${ns}:*`)).length === 0, 15_000, 'no key of the namespace').catch(async () => {
    t.fail(`keys left: ${(await scanKeys(redis, `${ns}:*`)).join(', ')}`);
  });
});

test('a worker stopped while it still serves a run whose keys were removed (its coordinator gone, swept by another) leaves none of them behind', async (t) => {
  const ns = testNamespace('stop-after-sweep');
  const redis = redisClient();
  t.teardown(() => redis.quit());
  const worker = track(await startWorker({ namespace: ns, data: fixture.dir, name: 'wA', env: { TRAINER_TEST_JOB_DELAY_MS: '200' } }));
  const out = tempDir('stop-after-sweep');
  cleanups.push(() => rm(out, { recursive: true, force: true }));
  const coordinator = track(startCoordinator(trainArgs(fixture.dir, out, [...EPOCHS, '--redis', REDIS_URL]), { TRAINER_NAMESPACE: ns }));
  const keys = new RunKeys(ns, runIdOf((await coordinator.waitFor(/Run \S+ announced/))[0]));
  await worker.waitFor(/serving run/);
  // The coordinator stops answering and its run is swept (as a resumed coordinator sweeps its earlier attempt);
  // the worker, still within its grace period, is told to stop.
  coordinator.kill('SIGSTOP');
  await deleteRunKeys(redis, keys);
  worker.kill('SIGTERM');
  t.is(await worker.exited, 143, worker.output());
  coordinator.kill('SIGKILL');
  await sleep(500);
  t.deepEqual(await scanKeys(redis, `${keys.prefix}:*`), [], 'BullMQ\'s bookkeeping re-created on close is removed too');
});
