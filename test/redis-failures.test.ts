// What the coordinator says when shards do not come back: nobody serves the run, a worker is too slow, or the
// workers present refuse the run (other data, other backend, other secret). Real Redis, real processes.
import test from 'ava';
import { rm } from 'node:fs/promises';
import { writeCifar10Fixture, type Cifar10Fixture } from './fixtures/cifar10-fixture.ts';
import { REDIS_URL, type Proc, redisClient, runCoordinator, scanKeys, startWorker, tempDir, testNamespace, trainArgs } from './fixtures/redis-harness.ts';

/** `text` as a RegExp source matching it literally. */
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

let fixture: Cifar10Fixture;
let otherData: Cifar10Fixture;
const procs: Proc[] = [];

test.before(async () => {
  fixture = await writeCifar10Fixture({ perFile: 20, testCount: 40 });
  otherData = await writeCifar10Fixture({ perFile: 21, testCount: 40 });
});

test.after.always(async () => {
  for (const p of procs) p.kill('SIGKILL');
  await fixture?.cleanup();
  await otherData?.cleanup();
});

test('no worker at all: the coordinator says which shards it waits for, then gives up with a WorkerTimeoutError and cleans up', async (t) => {
  const ns = testNamespace('no-worker');
  const out = tempDir('no-worker');
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const redis = redisClient();
  t.teardown(() => redis.quit());
  const started = Date.now();
  const run = await runCoordinator(trainArgs(fixture.dir, out, ['--epochs', '1', '--redis', REDIS_URL, '--shard-timeout', '3']), { TRAINER_NAMESPACE: ns });
  t.is(run.code, 1, run.output);
  t.true(Date.now() - started < 30_000);
  t.regex(run.output, /Waiting \d+ s for step 0 shard 0 \(job g1-0-1 queued for \d+ s; no worker has taken it\), step 0 shard 1 \(job g1-1-1 queued/);
  t.regex(
    run.output,
    new RegExp(`Error: Gave up on step 0 after 3 s \\(--shard-timeout 3\\): still waiting for step 0 shard 0 \\(job g1-0-1 queued for 3 s; no worker has taken it\\), step 0 shard 1 \\(.*\\); no worker serves this run\\. Start workers with \`npm run worker -- --redis ${escape(REDIS_URL)}\``),
  );
  t.deepEqual(await scanKeys(redis, `${ns}:*`), []);
});

test('a slow worker and workers that refuse the run (other data, another backend, another secret): the timeout names the shard held and by whom, and why the others refuse', async (t) => {
  const ns = testNamespace('refuse');
  const out = tempDir('refuse');
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const secret = 'the one';
  const workers = await Promise.all([
    startWorker({ namespace: ns, data: fixture.dir, name: 'wSlow', env: { TRAINER_SECRET: secret, TRAINER_TEST_JOB_DELAY_MS: '30000' } }),
    startWorker({ namespace: ns, data: otherData.dir, name: 'wData', env: { TRAINER_SECRET: secret } }),
    startWorker({ namespace: ns, data: fixture.dir, name: 'wBackend', backend: 'wasm', env: { TRAINER_SECRET: secret } }),
    startWorker({ namespace: ns, data: fixture.dir, name: 'wSecret', env: { TRAINER_SECRET: 'not the one' } }),
  ]);
  procs.push(...workers);
  const run = await runCoordinator(trainArgs(fixture.dir, out, ['--epochs', '1', '--redis', REDIS_URL, '--shard-timeout', '8']), {
    TRAINER_NAMESPACE: ns, TRAINER_SECRET: secret,
  });
  t.is(run.code, 1, run.output);
  t.regex(
    run.output,
    /Error: Gave up on step 0 after 8 s .*step 0 shard \d \(job g1-\d-1 on worker wSlow for \d s\), step 0 shard \d \(job g1-\d-1 queued for \d+ s; no worker has taken it\); 1 worker serving \(wSlow\); 3 refusing: /,
  );
  t.regex(run.output, /wData \(its data set differs from this worker's: the coordinator's CIFAR-10 files have fingerprint [0-9a-f]{12}…, the files in \S+ have [0-9a-f]{12}…/);
  t.regex(run.output, /wBackend \(the run computes with backend 'fused' but this worker was started with --backend wasm/);
  t.regex(run.output, /wSecret \(TRAINER_SECRET differs from the coordinator's\)/);
  for (const w of workers.slice(1)) t.regex(w.output(), /refusing run \S+: /);
});
