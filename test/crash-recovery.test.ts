// The coordinator killed (SIGKILL, no handler runs) at named moments — between the writes of an epoch end,
// between publishing weights and the next step, at the start of the final evaluation — then `--resume`: every
// file in --out ends as an uninterrupted run leaves it: weights.bin byte for byte, every epoch's metrics line,
// and an eval.json of the final weights. The moments come from TRAINER_TEST_CRASH_AT (src/testing/crash-point.ts).
import test from 'ava';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeCifar10Fixture, type Cifar10Fixture } from './fixtures/cifar10-fixture.ts';
import {
  REDIS_URL, type Proc, readEval, readWeights, redisClient, runCoordinator, scanKeys, startWorker, tempDir, testNamespace, trainArgs, until,
} from './fixtures/redis-harness.ts';

const FLAGS = ['--epochs', '3', '--workers', '2'];
let fixture: Cifar10Fixture;
let straight: { weights: Buffer; epochs: unknown[]; evaluation: unknown };

/** metrics.jsonl's lines without what differs between runs (timing, timestamp). */
async function readEpochs(out: string): Promise<unknown[]> {
  const text = await readFile(path.join(out, 'metrics.jsonl'), 'utf8');
  return text.trim().split('\n').map((line) => {
    const { epoch, loss, acc, globalStep, testAcc, testLoss } = JSON.parse(line) as Record<string, unknown>;
    return { epoch, loss, acc, globalStep, testAcc, testLoss };
  });
}

test.before(async () => {
  fixture = await writeCifar10Fixture({ perFile: 20, testCount: 40 }); // 100 training images: 5 steps per epoch
  const out = tempDir('crash-reference');
  const run = await runCoordinator(trainArgs(fixture.dir, out, [...FLAGS, '--eval-every', '2']));
  if (run.code !== 0) throw new Error(`reference run failed:\n${run.output}`);
  straight = { weights: await readWeights(out), epochs: await readEpochs(out), evaluation: await readEval(out) };
  await rm(out, { recursive: true, force: true });
});

const workers: Proc[] = [];
test.after.always(async () => {
  for (const w of workers) w.kill('SIGKILL');
  await fixture?.cleanup();
});

const MOMENTS = [
  'epoch-end:after-checkpoint@1',
  'epoch-end:after-checkpoint@3', // the last epoch: --resume has no step left to train, only files to finish
  'epoch-end:after-model-files@2',
  'epoch-end:after-metrics@3',
  'step:after-publish@7',
  'final-eval:start',
];

for (const moment of MOMENTS) {
  test.serial(`killed at ${moment}, --resume ends with every file of an uninterrupted run`, async (t) => {
    const out = tempDir('crash');
    t.teardown(() => rm(out, { recursive: true, force: true }));
    const args = trainArgs(fixture.dir, out, [...FLAGS, '--eval-every', '2']);
    const killed = await runCoordinator(args, { TRAINER_TEST_CRASH_AT: moment });
    t.is(killed.code, 128 + 9, `SIGKILLed at ${moment}:\n${killed.output}`);
    t.regex(killed.output, new RegExp(`crashing at ${moment.split('@')[0]}`));

    const resumed = await runCoordinator([...args, '--resume']);
    t.is(resumed.code, 0, resumed.output);
    t.regex(resumed.output, /Resuming from /);
    t.true((await readWeights(out)).equals(straight.weights), 'weights.bin equals the uninterrupted run\'s');
    t.deepEqual(await readEpochs(out), straight.epochs, 'metrics.jsonl holds every epoch once, with the same figures');
    t.deepEqual(await readEval(out), straight.evaluation, 'eval.json is the evaluation of the final weights');
  });
}

test.serial('an eval.json left by an earlier, shorter run is removed as soon as the run trains further', async (t) => {
  const out = tempDir('crash-stale-eval');
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const two = await runCoordinator(trainArgs(fixture.dir, out, ['--epochs', '2', '--workers', '2']));
  t.is(two.code, 0, two.output);
  // Continued to 3 epochs and killed before its final evaluation: no eval.json of 2-epoch weights stays beside 3-epoch ones.
  const three = await runCoordinator(trainArgs(fixture.dir, out, ['--epochs', '3', '--workers', '2', '--resume']), { TRAINER_TEST_CRASH_AT: 'final-eval:start' });
  t.is(three.code, 128 + 9, three.output);
  await t.throwsAsync(readFile(path.join(out, 'eval.json')), { code: 'ENOENT' });
});

// Over Redis, with a remote worker: the run's announcement, a step's jobs handed out, the clean-up at the end.
const REDIS_MOMENTS = ['redis:after-announce', 'redis:step-handed-out@7', 'step:after-publish@8', 'redis:evaluation-handed-out', 'redis:before-cleanup'];

for (const moment of REDIS_MOMENTS) {
  test.serial(`over Redis, killed at ${moment}: --resume ends with an uninterrupted run's files, and no key of either attempt is left`, async (t) => {
    const ns = testNamespace('crash-redis');
    const worker = await startWorker({ namespace: ns, data: fixture.dir, name: 'w' });
    workers.push(worker);
    const redis = redisClient();
    t.teardown(() => redis.quit());
    const out = tempDir('crash-redis');
    t.teardown(() => rm(out, { recursive: true, force: true }));
    const args = trainArgs(fixture.dir, out, ['--epochs', '3', '--eval-every', '2', '--redis', REDIS_URL]);
    const killed = await runCoordinator(args, { TRAINER_NAMESPACE: ns, TRAINER_TEST_CRASH_AT: moment });
    t.is(killed.code, 128 + 9, killed.output);
    // Killed before its first checkpoint (right after announcing the run), it is simply started again.
    const resume = existsSync(path.join(out, 'checkpoint.bin'));
    t.is(resume, moment !== 'redis:after-announce');
    const resumed = await runCoordinator(resume ? [...args, '--resume'] : args, { TRAINER_NAMESPACE: ns });
    t.is(resumed.code, 0, resumed.output);
    t.true((await readWeights(out)).equals(straight.weights), 'weights.bin equals the uninterrupted local run\'s');
    t.deepEqual(await readEpochs(out), straight.epochs);
    t.deepEqual(await readEval(out), straight.evaluation);
    await until(async () => (await scanKeys(redis, `${ns}:*`)).length === 0, 20_000, 'no key of either attempt');
    worker.kill('SIGTERM');
    t.is(await worker.exited, 143, worker.output());
  });
}
