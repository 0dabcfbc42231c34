// Redis itself fails in the middle of a run (a private redis-server without persistence, so a restart loses
// every key): a quick restart is ridden out (the run is announced again, its shards resubmitted), a long outage
// stops the coordinator with a message that says to --resume, and either way the final weights are
// byte-identical to an undisturbed run.
import test from 'ava';
import { rm } from 'node:fs/promises';
import { writeCifar10Fixture, type Cifar10Fixture } from './fixtures/cifar10-fixture.ts';
import {
  type PrivateRedis, type Proc, readWeights, redisClient, runCoordinator, scanKeys, sleep, startCoordinator, startPrivateRedis, startWorker,
  tempDir, testNamespace, trainArgs, until,
} from './fixtures/redis-harness.ts';

const EPOCHS = ['--epochs', '3'];
let fixture: Cifar10Fixture;
let reference: Buffer;
const procs: Proc[] = [];
const servers: PrivateRedis[] = [];

test.before(async () => {
  fixture = await writeCifar10Fixture({ perFile: 20, testCount: 40 });
  const out = tempDir('restart-reference');
  const run = await runCoordinator(trainArgs(fixture.dir, out, [...EPOCHS, '--workers', '2', '--no-eval']), { REDIS_URL: '' });
  if (run.code !== 0) throw new Error(`reference run failed:\n${run.output}`);
  reference = await readWeights(out);
  await rm(out, { recursive: true, force: true });
});

test.after.always(async () => {
  for (const p of procs) p.kill('SIGKILL');
  for (const s of servers) await s.kill();
  await fixture?.cleanup();
});

test.serial('Redis restarted mid-run (all keys lost): the coordinator re-announces the run and completes it byte-identically', async (t) => {
  const server = await startPrivateRedis();
  servers.push(server);
  const ns = testNamespace('restart');
  for (const name of ['wA', 'wB']) procs.push(await startWorker({ namespace: ns, data: fixture.dir, name, redis: server.url }));
  const out = tempDir('restart');
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const args = trainArgs(fixture.dir, out, [...EPOCHS, '--no-eval', '--redis', server.url]);
  const coordinator = startCoordinator(args, { TRAINER_NAMESPACE: ns });
  procs.push(coordinator);
  await coordinator.waitFor(/^epoch: 1 /m);
  await server.restart();
  const code = await coordinator.exited;
  if (code === 0) {
    t.regex(coordinator.output(), /keys vanished from Redis .*announced the run again and republished weights version \d+/);
  } else {
    // The other allowed outcome: a clear stop, then --resume.
    t.regex(coordinator.output(), /Error: .*Redis.*--resume/);
    const resumed = await runCoordinator([...args, '--resume'], { TRAINER_NAMESPACE: ns });
    t.is(resumed.code, 0, resumed.output);
  }
  t.true((await readWeights(out)).equals(reference), 'weights.bin equals an undisturbed run');
  const redis = redisClient(server.url);
  t.teardown(() => redis.quit());
  await until(async () => (await scanKeys(redis, '*')).length === 0, 5000, 'an empty Redis');
  t.pass();
});

test.serial('Redis gone longer than the outage limit: the coordinator stops with a clear message; --resume completes it byte-identically', async (t) => {
  const server = await startPrivateRedis();
  servers.push(server);
  const ns = testNamespace('outage');
  for (const name of ['wA', 'wB']) procs.push(await startWorker({ namespace: ns, data: fixture.dir, name, redis: server.url }));
  const out = tempDir('outage');
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const args = trainArgs(fixture.dir, out, [...EPOCHS, '--no-eval', '--redis', server.url]);
  const coordinator = startCoordinator(args, { TRAINER_NAMESPACE: ns, TRAINER_REDIS_OUTAGE_SECONDS: '2' });
  procs.push(coordinator);
  await coordinator.waitFor(/^epoch: 1 /m);
  await server.kill();
  const code = await coordinator.exited;
  t.is(code, 1, coordinator.output());
  t.regex(
    coordinator.output(),
    /Error: (Lost the connection to Redis at redis:\/\/127\.0\.0\.1:\d+ \d+ s ago .*and it has not come back|Redis at redis:\/\/127\.0\.0\.1:\d+ failed while .*)\. .*checkpoint .* holds the last completed step.*run the coordinator again with --resume/,
  );
  await sleep(500);
  await server.restart();
  const resumed = await runCoordinator([...args, '--resume'], { TRAINER_NAMESPACE: ns });
  t.is(resumed.code, 0, resumed.output);
  t.regex(resumed.output, /Resuming from /);
  t.true((await readWeights(out)).equals(reference), 'weights.bin equals an undisturbed run');
});
