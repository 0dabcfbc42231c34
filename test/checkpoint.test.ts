import test from 'ava';
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CheckpointError } from '../src/errors/index.ts';
import { assertCheckpointMatches, checkpointPath, readCheckpoint, writeCheckpoint, type Checkpoint } from '../src/checkpoint/checkpoint.ts';
import { decodeFile, encodeFile } from '../src/checkpoint/checkpoint-format.ts';
import { writeFileAtomic } from '../src/fs/atomic-write.ts';
import { SeededRandom } from '../src/random/seeded-random.ts';
import { type RunSettings, TUTORIAL_RECIPE } from '../src/train/run-settings.ts';
import { portableNumerics } from '../src/compute/numerics-identity.ts';

const PARAMS = 81_302;

const SETTINGS: RunSettings = {
  model: 'tutorial',
  parameterCount: PARAMS,
  seed: 1,
  batchSize: 10,
  shards: 2,
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  epochs: 10,
  ...TUTORIAL_RECIPE,
  trainCount: 50_000,
  testCount: 10_000,
  dataFingerprint: 'a'.repeat(64),
  backend: 'wasm',
  numerics: portableNumerics('wasm'),
};

function randomFloats(n: number, seed: number): Float32Array {
  const rng = new SeededRandom(seed, 42);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.nextFloat() - 0.5) * 2 ** ((rng.nextUint32() % 40) - 20);
  return out;
}

function sampleCheckpoint(): Checkpoint {
  const weights = randomFloats(PARAMS, 1);
  weights[0] = -0;
  weights[1] = 1e-45; // smallest subnormal
  weights[2] = Number.NaN;
  return {
    settings: SETTINGS,
    progress: {
      epochsDone: 3,
      stepInEpoch: 1234,
      globalStep: 3 * 5000 + 1234,
      epochLossSum: 2837.1234567890123 + 1 / 3, // a double with all 53 bits in use
      epochCorrect: 5871,
      epochSeen: 12_340,
      elapsedSeconds: 417.30000000000007,
    },
    weights,
    adam: { m: randomFloats(PARAMS, 2), v: randomFloats(PARAMS, 3).map(Math.abs), step: 16_234 },
    history: [1, 2, 3].map((epoch) => ({
      epoch, loss: 2 - epoch / 3, acc: epoch / 4, time: 26.23, imagesPerSecond: 1906, globalStep: epoch * 5000, workers: '2 local workers', timestamp: '2026-12-04T21:00:00.000Z',
    })),
  };
}

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'checkpoint-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

test('a checkpoint round-trips byte for byte', async (t) => {
  const dir = await tempDir(t);
  const out = path.join(dir, 'nested', 'out'); // created on demand
  const written = sampleCheckpoint();
  await writeCheckpoint(out, written);
  t.is(checkpointPath(out), path.join(out, 'checkpoint.bin'));
  t.deepEqual(await readdir(out), ['checkpoint.bin']);

  const read = await readCheckpoint(out);
  t.deepEqual(read.settings, written.settings);
  t.deepEqual(read.progress, written.progress);
  t.is(read.progress.epochLossSum, written.progress.epochLossSum);
  t.is(read.adam!.step, written.adam!.step);
  t.deepEqual(read.history, written.history);
  t.true(bytesOf(read.weights).equals(bytesOf(written.weights)));
  t.true(bytesOf(read.adam!.m).equals(bytesOf(written.adam!.m)));
  t.true(bytesOf(read.adam!.v).equals(bytesOf(written.adam!.v)));

  // Writing what was read gives the very same file.
  const first = await readFile(checkpointPath(out));
  await writeCheckpoint(out, read);
  t.true((await readFile(checkpointPath(out))).equals(first));
});

test('the epoch history must hold one metrics line per finished epoch; a version 1 checkpoint takes it from metrics.jsonl', async (t) => {
  const dir = await tempDir(t);
  const sample = sampleCheckpoint();
  await t.throwsAsync(writeCheckpoint(dir, { ...sample, history: sample.history.slice(1) }), {
    instanceOf: CheckpointError, message: /epoch history holds 2 epochs, but 3 are done/,
  });
  // Version 1 (before the history): the lines metrics.jsonl still has, of epochs the checkpoint counts as done.
  await writeCheckpoint(dir, sample);
  const decoded = decodeFile(await readFile(checkpointPath(dir)));
  const header: Record<string, unknown> = { ...(decoded.header as Record<string, unknown>), version: 1 };
  delete header.history;
  await writeFile(checkpointPath(dir), encodeFile(header, ['weights', 'adam.m', 'adam.v'].map((name) => {
    const data = decoded.arrays.get(name)!;
    return { name, length: data.length, data };
  })));
  const [one, , three] = sample.history;
  await writeFile(path.join(dir, 'metrics.jsonl'), [one, three, { ...three, epoch: 4 }].map((m) => JSON.stringify(m)).join('\n') + '\nnot json\n');
  t.deepEqual((await readCheckpoint(dir)).history, [one, three]);
});

test('progress doubles JSON cannot hold (NaN, -0, Infinity) still round-trip exactly', async (t) => {
  const dir = await tempDir(t);
  const checkpoint = sampleCheckpoint();
  checkpoint.progress.epochLossSum = Number.NaN;
  checkpoint.progress.elapsedSeconds = -0;
  await writeCheckpoint(dir, checkpoint);
  const read = await readCheckpoint(dir);
  t.true(Number.isNaN(read.progress.epochLossSum));
  t.true(Object.is(read.progress.elapsedSeconds, -0));

  checkpoint.progress.epochLossSum = Number.POSITIVE_INFINITY;
  await writeCheckpoint(dir, checkpoint);
  t.is((await readCheckpoint(dir)).progress.epochLossSum, Number.POSITIVE_INFINITY);
});

test('a flipped byte in the payload is reported as corruption', async (t) => {
  const dir = await tempDir(t);
  await writeCheckpoint(dir, sampleCheckpoint());
  const file = checkpointPath(dir);
  const bytes = await readFile(file);
  bytes[bytes.length - 32 - 4 * 1000] ^= 0x10; // inside adam.v
  await writeFile(file, bytes);
  const error = await t.throwsAsync(readCheckpoint(dir), { instanceOf: CheckpointError });
  t.regex(error!.message, /corrupt/);
  t.true(error!.message.includes(file));
});

test('a changed value in the JSON header is reported as corruption too', async (t) => {
  const dir = await tempDir(t);
  await writeCheckpoint(dir, sampleCheckpoint());
  const file = checkpointPath(dir);
  const bytes = await readFile(file);
  const at = bytes.indexOf('"batchSize":10');
  t.true(at > 0);
  bytes[at + '"batchSize":1'.length] = '2'.charCodeAt(0); // 10 → 12, still valid JSON
  await writeFile(file, bytes);
  const error = await t.throwsAsync(readCheckpoint(dir), { instanceOf: CheckpointError });
  t.regex(error!.message, /corrupt.*checksum/);
});

test('a truncated checkpoint is a CheckpointError saying so', async (t) => {
  const dir = await tempDir(t);
  await writeCheckpoint(dir, sampleCheckpoint());
  const file = checkpointPath(dir);
  const size = (await readFile(file)).length;
  for (const length of [size - 1, Math.floor(size / 2), 200, 10, 3]) {
    await writeCheckpoint(dir, sampleCheckpoint());
    await truncate(file, length);
    const error = await t.throwsAsync(readCheckpoint(dir), { instanceOf: CheckpointError }, `truncated to ${length}`);
    t.regex(error!.message, /truncated/, `truncated to ${length}`);
    t.true(error!.message.includes(file));
  }
});

test('an empty file or garbage is a CheckpointError, not a crash', async (t) => {
  const dir = await tempDir(t);
  const file = checkpointPath(dir);
  await writeFile(file, 'hello, I am not a checkpoint at all\n'.repeat(100));
  const garbage = await t.throwsAsync(readCheckpoint(dir), { instanceOf: CheckpointError });
  t.regex(garbage!.message, /not a checkpoint/);
  t.true(garbage!.message.includes(file));

  await writeFile(file, new Uint8Array(0));
  await t.throwsAsync(readCheckpoint(dir), { instanceOf: CheckpointError });

  // Right magic, absurd header length.
  const bogus = Buffer.alloc(64);
  bogus.write('CIFARDP1', 0, 'latin1');
  bogus.writeUInt32LE(0xffffffff, 8);
  await writeFile(file, bogus);
  await t.throwsAsync(readCheckpoint(dir), { instanceOf: CheckpointError });

  // Right magic, header that is not JSON.
  bogus.writeUInt32LE(20, 8);
  await writeFile(file, bogus);
  const notJson = await t.throwsAsync(readCheckpoint(dir), { instanceOf: CheckpointError });
  t.regex(notJson!.message, /corrupt/);
});

test('a missing checkpoint says there is nothing to resume and to run without --resume', async (t) => {
  const dir = await tempDir(t);
  const error = await t.throwsAsync(readCheckpoint(dir), { instanceOf: CheckpointError });
  t.regex(error!.message, /nothing to resume/);
  t.regex(error!.message, /without --resume/);
  t.true(error!.message.includes(checkpointPath(dir)));
});

test('assertCheckpointMatches lists every differing setting with both values, but lets epochs grow', (t) => {
  const checkpoint = sampleCheckpoint();
  t.notThrows(() => assertCheckpointMatches(checkpoint, { ...SETTINGS }));
  t.notThrows(() => assertCheckpointMatches(checkpoint, { ...SETTINGS, epochs: 20 }));

  const error = t.throws(() => assertCheckpointMatches(checkpoint, { ...SETTINGS, batchSize: 32, epochs: 20 }), {
    instanceOf: CheckpointError,
  });
  t.regex(error!.message, /batchSize \(--batch-size\): checkpoint 10, this run 32/);
  t.notRegex(error!.message, /epochs/);

  const several = t.throws(() => assertCheckpointMatches(checkpoint, { ...SETTINGS, lr: 0.01, backend: 'cpu', dataFingerprint: 'b'.repeat(64) }), {
    instanceOf: CheckpointError,
  });
  t.regex(several!.message, /lr \(--lr\): checkpoint 0\.001, this run 0\.01/);

  // A scheduled learning rate spans the run's epochs: those are then fixed too.
  const scheduled = { ...checkpoint, settings: { ...SETTINGS, lrSchedule: 'cosine' as const } };
  const grown = t.throws(() => assertCheckpointMatches(scheduled, { ...SETTINGS, lrSchedule: 'cosine', epochs: 20 }), { instanceOf: CheckpointError });
  t.regex(grown!.message, /epochs \(--epochs\): checkpoint 10, this run 20/);
  const augmented = t.throws(() => assertCheckpointMatches(checkpoint, { ...SETTINGS, augmentation: 'crop-flip' }), { instanceOf: CheckpointError });
  t.regex(augmented!.message, /augmentation \(--augmentation\): checkpoint "none", this run "crop-flip"/);
  t.regex(several!.message, /backend \(--backend\): checkpoint "wasm", this run "cpu"/);
  t.regex(several!.message, /dataFingerprint/);
  t.notRegex(several!.message, /batchSize/);
});

test('an interrupted write (a temp file left beside the checkpoint) does not affect reading the old one', async (t) => {
  const dir = await tempDir(t);
  const old = sampleCheckpoint();
  await writeCheckpoint(dir, old);
  const before = await readFile(checkpointPath(dir));

  // What a crash in the middle of writeFileAtomic leaves: a partial temp file in the same folder.
  const partial = before.subarray(0, Math.floor(before.length / 3));
  await writeFile(path.join(dir, `.checkpoint.bin.99999.0123456789ab.tmp`), partial);

  const read = await readCheckpoint(dir);
  t.deepEqual(read.progress, old.progress);
  t.true(bytesOf(read.weights).equals(bytesOf(old.weights)));
  t.true((await readFile(checkpointPath(dir))).equals(before));

  // And the next write still works and replaces the checkpoint.
  const next = sampleCheckpoint();
  next.progress.globalStep += 1;
  await writeCheckpoint(dir, next);
  t.is((await readCheckpoint(dir)).progress.globalStep, old.progress.globalStep + 1);
});

test('a failed atomic write leaves the old file and no temp file', async (t) => {
  const dir = await tempDir(t);
  const target = path.join(dir, 'file.txt');
  await writeFileAtomic(target, 'old');
  // A folder where the file should be makes the rename fail after the temp file was written.
  const blocked = path.join(dir, 'blocked');
  await (await import('node:fs/promises')).mkdir(path.join(blocked, 'child'), { recursive: true });
  await t.throwsAsync(writeFileAtomic(blocked, 'new'));
  t.deepEqual((await readdir(dir)).sort(), ['blocked', 'file.txt']);
  t.is(await readFile(target, 'utf8'), 'old');
  await writeFileAtomic(target, new Uint8Array([110, 101, 119]));
  t.is(await readFile(target, 'utf8'), 'new');
});

test('writing an inconsistent checkpoint is refused', async (t) => {
  const dir = await tempDir(t);
  const bad = sampleCheckpoint();
  bad.adam!.m = new Float32Array(5);
  const error = await t.throwsAsync(writeCheckpoint(dir, bad), { instanceOf: CheckpointError });
  t.regex(error!.message, /adam\.m has 5 values/);
  await t.throwsAsync(readCheckpoint(dir), { instanceOf: CheckpointError, message: /nothing to resume/ });
});
