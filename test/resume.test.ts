import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeCifar10Fixture } from './fixtures/cifar10-fixture.ts';
import { loadCifar10 } from '../src/data/cifar10-dataset.ts';
import { readCheckpoint } from '../src/checkpoint/checkpoint.ts';
import { recordRun, settingsFor, sha256 } from './helpers/training-run.ts';
import { freePort } from './fixtures/redis-harness.ts';

test('a run stopped mid-epoch or after an epoch and resumed ends byte-identical to an uninterrupted run', async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 6, testCount: 10 }); // 30 images: 3 steps per epoch
  t.teardown(fixture.cleanup);
  const dataset = await loadCifar10(fixture.dir);
  const settings = settingsFor(dataset, { epochs: 3, shards: 2 });
  const straight = await recordRun(dataset, settings, { threads: 2 });

  for (const stopAfterStep of [2, 3, 7]) {
    const outDir = await fs.mkdtemp(path.join(os.tmpdir(), 'resume-'));
    t.teardown(() => fs.rm(outDir, { recursive: true, force: true }));
    const first = await recordRun(dataset, settings, { threads: 2, outDir, stopAfterStep });
    t.true(first.stopped, `stopped after step ${stopAfterStep}`);
    const checkpoint = await readCheckpoint(outDir);
    t.is(checkpoint.progress.globalStep, stopAfterStep);
    const second = await recordRun(dataset, settings, { threads: 1, outDir, resumeFrom: checkpoint });
    t.false(second.stopped);
    t.deepEqual([...first.stepHashes, ...second.stepHashes], straight.stepHashes, `stop after step ${stopAfterStep}`);
    t.is(sha256(second.weights), sha256(straight.weights));
  }
});

function coordinator(args: string[], onLine?: (line: string, child: ReturnType<typeof spawn>) => void) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/coordinator.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const feed = (chunk: Buffer) => {
    output += chunk.toString();
    for (const line of chunk.toString().split('\n')) onLine?.(line, child);
  };
  child.stdout.on('data', feed);
  child.stderr.on('data', feed);
  return new Promise<{ code: number | null; output: string }>((resolve) => child.on('close', (code) => resolve({ code, output })));
}

test('npm run coordinator: SIGINT writes a checkpoint, --resume finishes with the same weights.bin as an uninterrupted run', async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 6, testCount: 10 });
  t.teardown(fixture.cleanup);
  const common = ['--data', fixture.dir, '--epochs', '3', '--workers', '2', '--seed', '9', '--batch-size', '8'];
  const straightOut = path.join(fixture.root, 'straight');
  const straight = await coordinator([...common, '--out', straightOut]);
  t.is(straight.code, 0, straight.output);
  t.regex(straight.output, /epoch: 3 loss:\d\.\d{5} acc:\d\.\d\d time:/);
  t.regex(straight.output, /Acc: \d\.\d\d/);

  const out = path.join(fixture.root, 'interrupted');
  let signalled = false;
  const first = await coordinator([...common, '--out', out], (line, child) => {
    if (!signalled && line.startsWith('epoch: 1')) {
      signalled = true;
      child.kill('SIGINT');
    }
  });
  t.is(first.code, 130, first.output);
  t.regex(first.output, /continue with --resume/);

  const refused = await coordinator([...common, '--out', out]);
  t.not(refused.code, 0);
  t.regex(refused.output, /already holds a run's checkpoint/);
  t.notRegex(refused.output, /at .*\.ts:\d+/, 'no stack trace');

  const resumed = await coordinator([...common, '--out', out, '--resume']);
  t.is(resumed.code, 0, resumed.output);
  t.regex(resumed.output, /Resuming from/);
  const a = await fs.readFile(path.join(straightOut, 'weights.bin'));
  const b = await fs.readFile(path.join(out, 'weights.bin'));
  t.true(a.equals(b), 'weights.bin byte-identical');
  const metrics = (await fs.readFile(path.join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(metrics.map((m) => m.epoch), [1, 2, 3]);
});

test('--resume with other settings than the checkpoint is refused, naming what differs', async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 2, testCount: 10 });
  t.teardown(fixture.cleanup);
  const out = path.join(fixture.root, 'out');
  const common = ['--data', fixture.dir, '--workers', '1', '--out', out, '--no-eval'];
  t.is((await coordinator([...common, '--epochs', '1'])).code, 0);
  const changed = await coordinator([...common, '--epochs', '2', '--resume', '--batch-size', '4']);
  t.not(changed.code, 0);
  t.regex(changed.output, /batchSize.*10.*4/s);
  t.notRegex(changed.output, /at .*\.ts:\d+/, 'no stack trace');
});

test('checks that need no data come first, and a failed start leaves no --out behind', async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 2, testCount: 10 });
  t.teardown(fixture.cleanup);
  const nowhere = path.join(fixture.root, 'no-data-here');
  // An unreachable Redis is said before the data set is looked for (it does not exist here).
  const out = path.join(fixture.root, 'never-created');
  const port = await freePort();
  const unreachable = await coordinator(['--data', nowhere, '--out', out, '--redis', `redis://127.0.0.1:${port}`]);
  t.is(unreachable.code, 1, unreachable.output);
  t.regex(unreachable.output, new RegExp(`Error: .*redis://127\\.0\\.0\\.1:${port}`));
  t.notRegex(unreachable.output, /CIFAR-10/);
  t.false(existsSync(out), 'no empty --out left behind');
  // A run's checkpoint in --out is refused before the data set is looked for.
  const taken = path.join(fixture.root, 'taken');
  t.is((await coordinator(['--data', fixture.dir, '--workers', '1', '--epochs', '1', '--out', taken, '--no-eval'])).code, 0);
  const refused = await coordinator(['--data', nowhere, '--out', taken]);
  t.is(refused.code, 2, refused.output);
  t.regex(refused.output, /already holds a run's checkpoint/);
});
