// The node backend (native TensorFlow through @tensorflow/tfjs-node): run when it is installed and loads
// (`npm run native:install`, which .ci/run does), skipped with the reason otherwise. Real threads, real
// processes, real Redis (TEST_REDIS_URL, else 127.0.0.1:6379), real files.
// Not here yet: model files (model.json + weights.bin) written from a node run — those tests come with the
// change that reworks the model files.
import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { writeCifar10Fixture, type Cifar10Fixture } from './fixtures/cifar10-fixture.ts';
import { REDIS_URL, readEval, readWeights, runCoordinator, startCoordinator, startWorker, tempDir, testNamespace, trainArgs } from './fixtures/redis-harness.ts';
import { nativeUnavailable } from './helpers/native-engine.ts';
import { recordRun, settingsFor, sha256 } from './helpers/training-run.ts';
import { loadCifar10, type Cifar10Dataset } from '../src/data/cifar10-dataset.ts';
import { readCheckpoint } from '../src/checkpoint/checkpoint.ts';
import { evaluateTestSet } from '../src/eval/test-evaluation.ts';
import { modelByName } from '../src/model/model-registry.ts';
import { initialParameters, parameterCount } from '../src/model/parameter-vector.ts';
import { ThreadPool } from '../src/pool/threads/thread-pool.ts';
import type { BackendChoice } from '../src/compute/backend.ts';

const why = nativeUnavailable();
if (why) console.log(`Skipping the node backend's tests: ${why}.`);
const nativeTest = why ? test.skip : test;
const nativeSerial = why ? test.skip : test.serial;

const root = fileURLToPath(new URL('..', import.meta.url));
const IDENTITY = /^node: tf \d+\.\d+\.\d+, intra-op 1, onednn (on|off), isa [a-z0-9_]+, cpu .+$/;

let fixture: Cifar10Fixture;
let dataset: Cifar10Dataset;

test.before(async () => {
  fixture = await writeCifar10Fixture({ perFile: 8, testCount: 24 }); // 40 training images
  dataset = await loadCifar10(fixture.dir);
});
test.after.always(async () => {
  await fixture?.cleanup();
});

function pool(model: string, backend: BackendChoice, threads: number, callerComputes = false): Promise<ThreadPool> {
  return ThreadPool.create({ model, parameterCount: parameterCount(modelByName(model)), dataset, threads, backend, callerComputes });
}

/** One step's two shards and an evaluation of the first 12 test images, at seeded weights (small: tfjs-cpu is slow). */
async function computeOnce(p: ThreadPool, model: string) {
  await p.publishWeights(1, initialParameters(modelByName(model), 3));
  const gradients = await p.computeGradients([
    { step: 4, shard: 0, weightsVersion: 1, indices: Int32Array.from([0, 9, 22]) },
    { step: 4, shard: 1, weightsVersion: 1, indices: Int32Array.from([2, 39]) },
  ]);
  const evaluation = await evaluateTestSet(p, 1, dataset.test, dataset.classNames, 12);
  return { gradients: gradients.map((g) => g.slice()), evaluation };
}

for (const model of ['tutorial', 'bn-cnn']) {
  nativeTest(`${model} on node: shard gradients, losses and evaluation match tfjs-cpu's`, async (t) => {
    const node = await pool(model, 'node', 1);
    const cpu = await pool(model, 'cpu', 1);
    try {
      t.is(node.backend, 'node');
      t.regex(node.numerics, IDENTITY);
      const a = await computeOnce(node, model);
      const b = await computeOnce(cpu, model);
      for (const [i, g] of a.gradients.entries()) {
        const ref = b.gradients[i];
        let scale = 0;
        let worst = 0;
        for (let k = 0; k < g.length; k++) {
          scale = Math.max(scale, Math.abs(ref[k]));
          worst = Math.max(worst, Math.abs(g[k] - ref[k]));
        }
        t.true(scale > 0 && worst / scale < 1e-4, `shard ${i}: max difference ${worst} at scale ${scale}`);
        t.true(Math.abs(g.at(-2)! - ref.at(-2)!) < 1e-4 * Math.abs(ref.at(-2)!), 'loss sum');
        t.is(g.at(-1), ref.at(-1), 'correct count');
      }
      t.true(Math.abs(a.evaluation.loss - b.evaluation.loss) < 1e-5 * b.evaluation.loss, `evaluation loss ${a.evaluation.loss} vs ${b.evaluation.loss}`);
      t.deepEqual(a.evaluation.confusion, b.evaluation.confusion);
    } finally {
      await node.close();
      await cpu.close();
    }
  });
}

nativeTest('node: weights after every step are byte-identical with 1, 2 and 3 workers, with or without the calling thread computing', async (t) => {
  for (const [model, batchSize, shards] of [['tutorial', 10, 3], ['bn-cnn', 8, 3]] as const) {
    const settings = settingsFor(dataset, { model, batchSize, shards, epochs: 1, backend: 'node' });
    const reference = await recordRun(dataset, settings, { threads: 1 });
    t.is(new Set(reference.stepHashes).size, reference.stepHashes.length, `${model}: every step changes the weights`);
    for (const [threads, callerComputes] of [[2, false], [3, false], [2, true], [3, true]] as const) {
      const run = await recordRun(dataset, settings, { threads, callerComputes });
      t.deepEqual(run.stepHashes, reference.stepHashes, `${model}, ${threads} workers${callerComputes ? ' (this thread one of them)' : ''}`);
    }
  }
});

nativeTest('node: evaluation is the same for 1 and 3 worker threads', async (t) => {
  const one = await pool('bn-cnn', 'node', 1);
  const three = await pool('bn-cnn', 'node', 3);
  try {
    const a = await computeOnce(one, 'bn-cnn');
    const b = await computeOnce(three, 'bn-cnn');
    t.deepEqual({ ...a.evaluation, seconds: 0 }, { ...b.evaluation, seconds: 0 });
    t.deepEqual(a.gradients.map(sha256), b.gradients.map(sha256));
  } finally {
    await one.close();
    await three.close();
  }
});

nativeSerial('node: no tensor leak — tf.memory().numTensors stays flat over many steps and evaluations', async (t) => {
  // One worker: this thread, so its tfjs engine is the one that computes.
  const p = await pool('bn-cnn', 'node', 1, true);
  try {
    t.is(tf.getBackend(), 'tensorflow');
    const weights = initialParameters(modelByName('bn-cnn'), 2);
    const counts: number[] = [];
    for (let step = 0; step < 40; step++) {
      await p.publishWeights(step, weights);
      const [g] = await p.computeGradients([{ step, shard: 0, weightsVersion: step, indices: Int32Array.from({ length: 6 }, (_, i) => (step * 6 + i) % 40) }]);
      p.recycle([g]);
      if (step % 10 === 9) {
        await p.evaluate([{ weightsVersion: step, start: 0, end: 24 }]);
        counts.push(tf.memory().numTensors);
      }
    }
    t.true(counts[0] > 0);
    t.deepEqual(counts, counts.map(() => counts[0]), `numTensors after steps 10, 20, 30, 40: ${counts.join(', ')}`);
  } finally {
    await p.close();
  }
});

nativeTest("--backend auto with tfjs-node installed: fused for the tutorial net (node is slower there), node for bn-cnn", async (t) => {
  const tutorial = await pool('tutorial', 'auto', 2);
  const bn = await pool('bn-cnn', 'auto', 2);
  try {
    t.is(tutorial.backend, 'fused');
    t.is(bn.backend, 'node');
    t.is(bn.threads, 2, 'two native worker threads in one process');
  } finally {
    await tutorial.close();
    await bn.close();
  }
});

/**
 * Runs a module (written to a file: worker threads inherit the process's flags, and --input-type would stop them)
 * in a fresh process from the project root, with extra environment; its exit and output.
 */
async function child(script: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  const dir = await fs.mkdtemp(path.join(root, 'node_modules', '.native-test-'));
  const file = path.join(dir, 'script.mts');
  await fs.writeFile(file, script);
  return new Promise((resolve) => {
    const proc = execFile(process.execPath, ['--import', 'tsx', file], {
      cwd: root, env: { ...process.env, ...env }, timeout: 240_000, maxBuffer: 16 << 20,
    }, (error, stdout, stderr) => {
      void fs.rm(dir, { recursive: true, force: true });
      resolve({ code: proc.exitCode, signal: proc.signalCode ?? (error as { signal?: string } | null)?.signal ?? null, stdout, stderr });
    });
  });
}

const IDENTITY_SCRIPT = (dir: string) => `
  import { createHash } from 'node:crypto';
  import { loadCifar10 } from ${JSON.stringify(path.join(root, 'src/data/cifar10-dataset.ts'))};
  import { ThreadPool } from ${JSON.stringify(path.join(root, 'src/pool/threads/thread-pool.ts'))};
  import { modelByName } from ${JSON.stringify(path.join(root, 'src/model/model-registry.ts'))};
  import { initialParameters, parameterCount } from ${JSON.stringify(path.join(root, 'src/model/parameter-vector.ts'))};
  const dataset = await loadCifar10(${JSON.stringify(dir)});
  const model = modelByName('bn-cnn');
  const pool = await ThreadPool.create({ model: model.name, parameterCount: parameterCount(model), dataset, threads: 2, backend: 'node' });
  await pool.publishWeights(0, initialParameters(model, 4));
  const [g] = await pool.computeGradients([{ step: 0, shard: 0, weightsVersion: 0, indices: Int32Array.from([3, 1, 4, 15, 9, 26, 5, 35]) }]);
  const sha = createHash('sha256').update(new Uint8Array(g.buffer, g.byteOffset, g.byteLength)).digest('hex');
  await pool.close();
  const again = await ThreadPool.create({ model: model.name, parameterCount: parameterCount(model), dataset, threads: 1, backend: 'node' });
  await again.close();
  console.log(JSON.stringify({ numerics: pool.numerics, sha }));`;

nativeTest('node in fresh processes: exits cleanly after closing its pools; the identity names what changes the bytes (oneDNN, ISA) and ignores what does not', async (t) => {
  const run = async (env: NodeJS.ProcessEnv) => {
    const r = await child(IDENTITY_SCRIPT(fixture.dir), env);
    t.is(r.signal, null, `no signal at exit (${JSON.stringify(env)}):\n${r.stderr}`);
    t.is(r.code, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { numerics: string; sha: string };
  };
  const base = await run({});
  t.regex(base.numerics, IDENTITY);
  // The machine's thread count and TensorFlow's inter-op setting are pinned or irrelevant: same bytes, same identity.
  const inherited = await run({ TF_NUM_INTRAOP_THREADS: '4', TF_NUM_INTEROP_THREADS: '3' });
  t.deepEqual(inherited, base);
  const onednnOff = await run({ TF_ENABLE_ONEDNN_OPTS: '0' });
  t.regex(onednnOff.numerics, /onednn off/);
  t.not(onednnOff.sha, base.sha, 'oneDNN off computes other bytes');
  if (/isa avx512/.test(base.numerics)) {
    const avx2 = await run({ ONEDNN_MAX_CPU_ISA: 'AVX2' });
    t.regex(avx2.numerics, /isa avx2,/);
    t.not(avx2.sha, base.sha, 'an AVX2 cap computes other bytes');
  }
});

nativeTest('node: a run stopped and resumed ends byte-identical; npm run coordinator --resume under another engine is refused, naming the numerics', async (t) => {
  const settings = settingsFor(dataset, { model: 'bn-cnn', batchSize: 8, shards: 2, epochs: 2, seed: 6, backend: 'node' });
  const straight = await recordRun(dataset, settings, { threads: 2 });
  const outDir = await fs.mkdtemp(path.join(os.tmpdir(), 'native-resume-'));
  t.teardown(() => fs.rm(outDir, { recursive: true, force: true }));
  const first = await recordRun(dataset, settings, { threads: 2, outDir, stopAfterStep: 3 });
  t.true(first.stopped);
  const checkpoint = await readCheckpoint(outDir);
  t.regex(checkpoint.settings.numerics, IDENTITY);
  const second = await recordRun(dataset, settings, { threads: 1, outDir, resumeFrom: checkpoint });
  t.deepEqual([...first.stepHashes, ...second.stepHashes], straight.stepHashes);

  // The CLI on the same checkpoint: refused under a capped ISA (another engine), continued under the same one.
  const args = ['src/cli/coordinator.ts', '--data', fixture.dir, '--out', outDir, '--model', 'bn-cnn', '--batch-size', '8', '--shards', '2',
    '--epochs', '3', '--seed', '6', '--resume', '--no-eval'];
  const capped = await runCoordinator(args, { ONEDNN_MAX_CPU_ISA: 'SSE41', REDIS_URL: '' });
  t.is(capped.code, 1, capped.output);
  t.regex(capped.output, /numerics \(the native engine .*\): checkpoint "node: tf [^"]*isa (?!sse41)\w+[^"]*", this run "node: tf [^"]*isa sse41,/);
  t.notRegex(capped.output, /at .*\.ts:\d+/, 'no stack trace');
  const same = await runCoordinator(args, { REDIS_URL: '' });
  t.is(same.code, 0, same.output);
  t.regex(same.output, /Backend: node \(the checkpoint's\)/);
  t.regex(same.output, /Numerics: node: tf /);
});

nativeTest('node over real Redis: a remote worker process computes the same weights and evaluation as local threads; one whose engine differs refuses, saying why', async (t) => {
  const ns = testNamespace('native');
  const args = (out: string, extra: string[]) => trainArgs(fixture.dir, out, ['--backend', 'node', '--epochs', '1', '--batch-size', '10', ...extra]);
  const localOut = tempDir('native-local');
  const remoteOut = tempDir('native-remote');
  t.teardown(() => Promise.all([localOut, remoteOut].map((d) => fs.rm(d, { recursive: true, force: true }))));
  const local = await runCoordinator(args(localOut, ['--workers', '2']), { REDIS_URL: '' });
  t.is(local.code, 0, local.output);

  const other = await startWorker({ namespace: ns, data: fixture.dir, name: 'wOther', env: { ONEDNN_MAX_CPU_ISA: 'SSE41' } });
  t.teardown(() => other.kill('SIGKILL'));
  const coordinator = startCoordinator(args(remoteOut, ['--redis', REDIS_URL]), { TRAINER_NAMESPACE: ns });
  t.teardown(() => coordinator.kill('SIGKILL'));
  await other.waitFor(/refusing run \S+: this worker's node engine would not reproduce the run's bytes: the run computes with "node: [^"]*", this worker with "node: [^"]*isa sse41/, 120_000);
  const same = await startWorker({ namespace: ns, data: fixture.dir, name: 'wSame', concurrency: 2 });
  t.teardown(() => same.kill('SIGKILL'));
  t.is(await coordinator.exited, 0, coordinator.output());
  t.regex(coordinator.output(), /Run \S+ announced on Redis .*backend node/);
  t.true((await readWeights(remoteOut)).equals(await readWeights(localOut)), 'weights.bin equals the local node run');
  t.deepEqual(await readEval(remoteOut), await readEval(localOut));
  t.regex(same.output(), /serving run \S+ \(model tutorial, backend node, 2 threads/);
  const hash = createHash('sha256').update(await readWeights(localOut)).digest('hex');
  t.log(`node weights ${hash.slice(0, 12)}, the refusal: ${/refusing run [^\n]*/.exec(other.output())?.[0]}`);
});
