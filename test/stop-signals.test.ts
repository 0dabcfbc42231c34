// Stopping the coordinator with signals, as users do: one Ctrl-C (from a real terminal, through `npm run`, whose
// copies of the signal must count as one), SIGTERM (exit 143), and a second Ctrl-C a moment later (exit at once).
import test from 'ava';
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { writeCifar10Fixture, type Cifar10Fixture } from './fixtures/cifar10-fixture.ts';
import { ROOT, runCoordinator, sleep, startCoordinator, tempDir, trainArgs } from './fixtures/redis-harness.ts';
import { readCheckpoint } from '../src/checkpoint/checkpoint.ts';

// Long enough that a signal lands mid-run: 5 steps per epoch, a few ms each.
const FLAGS = ['--epochs', '400', '--workers', '2', '--no-eval'];
let fixture: Cifar10Fixture;

test.before(async () => {
  fixture = await writeCifar10Fixture({ perFile: 20, testCount: 20 });
});
test.after.always(async () => {
  await fixture?.cleanup();
});

test('two SIGINTs milliseconds apart (a relayed copy of one Ctrl-C) are one request: the step finishes, a checkpoint is written, exit 130', async (t) => {
  const out = tempDir('signal-twice');
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const coordinator = startCoordinator(trainArgs(fixture.dir, out, FLAGS));
  await coordinator.waitFor(/^epoch: 2 /m);
  coordinator.kill('SIGINT');
  await sleep(20);
  coordinator.kill('SIGINT');
  t.is(await coordinator.exited, 130, coordinator.output());
  t.notRegex(coordinator.output(), /SIGINT again/);
  t.regex(coordinator.output(), /Checkpoint written to .*; continue with --resume/);
  t.true((await readCheckpoint(out)).progress.globalStep >= 10);
});

test('SIGTERM stops the same way and exits 143', async (t) => {
  const out = tempDir('signal-term');
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const coordinator = startCoordinator(trainArgs(fixture.dir, out, FLAGS));
  await coordinator.waitFor(/^epoch: 2 /m);
  coordinator.kill('SIGTERM');
  t.is(await coordinator.exited, 143, coordinator.output());
  t.regex(coordinator.output(), /SIGTERM: finishing the current step/);
  t.regex(coordinator.output(), /continue with --resume/);
});

test('a second SIGINT well after the first exits at once, keeping the last checkpoint intact', async (t) => {
  const out = tempDir('signal-again');
  t.teardown(() => rm(out, { recursive: true, force: true }));
  // A step that takes long (workers sleep before each shard) keeps the first request pending.
  const coordinator = startCoordinator(trainArgs(fixture.dir, out, ['--epochs', '3', '--workers', '1', '--no-eval']), { TRAINER_TEST_STEP_DELAY_MS: '3000' });
  await coordinator.waitFor(/Backend: /);
  await sleep(500);
  coordinator.kill('SIGINT');
  await coordinator.waitFor(/SIGINT: finishing the current step/);
  await sleep(1500);
  coordinator.kill('SIGINT');
  t.is(await coordinator.exited, 130, coordinator.output());
  t.regex(coordinator.output(), /SIGINT again: exiting without waiting/);
});

test('one Ctrl-C in a real terminal, through `npm run coordinator`, finishes the step and writes a checkpoint', async (t) => {
  const out = tempDir('signal-terminal');
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const args = trainArgs(fixture.dir, out, FLAGS).slice(1).join(' ');
  // `script` (util-linux) gives an interactive bash a pseudo-terminal: Ctrl-C (\x03) typed there signals the
  // foreground job's whole process group (npm, its shell, node), as a terminal does.
  const terminal = spawn('script', ['-q', '-c', 'bash --norc --noprofile -i', '/dev/null'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PS1: '$ ' } });
  t.teardown(() => terminal.kill('SIGKILL'));
  let text = '';
  terminal.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const waitFor = async (pattern: RegExp, ms = 60_000) => {
    const end = Date.now() + ms;
    while (!pattern.test(text)) {
      if (Date.now() > end) throw new Error(`no ${pattern} in:\n${text}`);
      await sleep(50);
    }
  };
  terminal.stdin.write(`npm run coordinator -- ${args}\n`);
  await waitFor(/epoch: 2 /);
  terminal.stdin.write('\x03');
  await waitFor(/continue with --resume/);
  terminal.stdin.write('exit\n');
  t.regex(text, /SIGINT: finishing the current step/);
  t.notRegex(text, /SIGINT again/);
  t.true((await readCheckpoint(out)).progress.globalStep >= 10);
});
