import test from 'ava';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ModelFormatError } from '../src/errors/index.ts';
import { loadLayersModelWeights, saveLayersModel } from '../src/model/layers-model-files.ts';
import { initialParameters, parameterCount, parameterSlices } from '../src/model/parameter-vector.ts';
import { tutorialCnn } from '../src/model/tutorial-cnn.ts';
import type { ModelDefinition } from '../src/model/model-definition.ts';
import { SeededRandom } from '../src/random/seeded-random.ts';

test.before(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'layers-model-files-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** What a browser does: fetch model.json and the files it names, nothing more. */
function fileHandler(dir: string): tf.io.IOHandler {
  return {
    load: async () => {
      const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
      const weightSpecs: tf.io.WeightsManifestEntry[] = [];
      const buffers: Buffer[] = [];
      for (const group of json.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) buffers.push(await readFile(path.join(dir, p)));
      }
      const all = Buffer.concat(buffers);
      const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
      return { modelTopology: json.modelTopology, weightSpecs, weightData, format: json.format, userDefinedMetadata: json.userDefinedMetadata };
    },
  };
}

function randomImages(n: number, seed: number): tf.Tensor4D {
  const rng = new SeededRandom(seed, 99);
  const data = new Float32Array(n * 32 * 32 * 3);
  for (let i = 0; i < data.length; i++) data[i] = rng.nextFloat();
  return tf.tensor4d(data, [n, 32, 32, 3]);
}

function ourLogits(model: ModelDefinition, weights: Float32Array, x: tf.Tensor4D): Float32Array {
  return tf.tidy(() => {
    const params = parameterSlices(model).map(({ spec, offset, size }) => tf.tensor(weights.subarray(offset, offset + size), [...spec.shape]));
    return model.logits(params, x).dataSync() as Float32Array;
  });
}

async function kerasLogits(dir: string, x: tf.Tensor4D): Promise<Float32Array> {
  const keras = await tf.loadLayersModel(fileHandler(dir));
  try {
    const y = keras.predict(x) as tf.Tensor;
    const out = (await y.data()) as Float32Array;
    y.dispose();
    return out;
  } finally {
    keras.dispose();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

test('tf.loadLayersModel reads the saved files and predicts exactly what model.logits computes', async (t) => {
  const dir = await tempDir(t);
  const weights = initialParameters(tutorialCnn, 7);
  await saveLayersModel(dir, tutorialCnn, weights);

  const x = randomImages(8, 1);
  const ours = ourLogits(tutorialCnn, weights, x);
  const theirs = await kerasLogits(dir, x);
  x.dispose();

  t.is(theirs.length, 8 * 10);
  // The logits must actually vary, or agreement would prove nothing.
  t.true(Math.max(...ours) - Math.min(...ours) > 1e-3);
  t.log(`max abs diff ${maxAbsDiff(ours, theirs)}`);
  t.true(maxAbsDiff(ours, theirs) <= 1e-5, `max |keras - ours| = ${maxAbsDiff(ours, theirs)}`);
});

test('the Keras comparison notices a wrong flatten order (PyTorch CHW instead of NHWC)', async (t) => {
  const dir = await tempDir(t);
  const weights = initialParameters(tutorialCnn, 7);
  // Reorder fc1's 576 input rows from (h, w, c) to (c, h, w), as a PyTorch-layout export would.
  const fc1 = parameterSlices(tutorialCnn).find((s) => s.spec.name === 'fc1/kernel')!;
  const chw = weights.slice();
  for (let h = 0; h < 6; h++)
    for (let w = 0; w < 6; w++)
      for (let c = 0; c < 16; c++) {
        const from = (h * 6 + w) * 16 + c;
        const to = c * 36 + h * 6 + w;
        chw.set(weights.subarray(fc1.offset + from * 120, fc1.offset + (from + 1) * 120), fc1.offset + to * 120);
      }
  await saveLayersModel(dir, tutorialCnn, chw);
  const x = randomImages(8, 2);
  const ours = ourLogits(tutorialCnn, weights, x);
  const theirs = await kerasLogits(dir, x);
  x.dispose();
  t.true(maxAbsDiff(ours, theirs) > 1e-3);
});

test('weights.bin is the flat vector as little-endian float32 and loads back bit for bit', async (t) => {
  const dir = await tempDir(t);
  const weights = initialParameters(tutorialCnn, 3);
  weights[0] = -0;
  weights[1] = 1e-42; // subnormal
  await saveLayersModel(dir, tutorialCnn, weights);

  const bin = await readFile(path.join(dir, 'weights.bin'));
  t.is(bin.byteLength, parameterCount(tutorialCnn) * 4);
  const view = new DataView(bin.buffer, bin.byteOffset, bin.byteLength);
  t.is(view.getFloat32(8, true), weights[2]);

  const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
  t.is(json.format, 'layers-model');
  t.is(json.convertedBy, null);
  t.deepEqual(json.userDefinedMetadata, { trainer: { model: 'tutorial', parameterCount: 81_302 } });
  t.deepEqual(json.weightsManifest[0].paths, ['weights.bin']);
  t.deepEqual(
    json.weightsManifest[0].weights.map((w: { name: string }) => w.name),
    tutorialCnn.parameters.map((p) => p.name),
  );

  const loaded = await loadLayersModelWeights(dir);
  t.is(loaded.model, tutorialCnn);
  t.deepEqual(Buffer.from(loaded.weights.buffer), Buffer.from(weights.buffer));
  t.true(Object.is(loaded.weights[0], -0));
});

test('saving over an existing model replaces it and leaves no temp files', async (t) => {
  const dir = await tempDir(t);
  await saveLayersModel(dir, tutorialCnn, initialParameters(tutorialCnn, 1));
  const second = initialParameters(tutorialCnn, 2);
  await saveLayersModel(dir, tutorialCnn, second);
  t.deepEqual((await loadLayersModelWeights(dir)).weights, second);
  const { readdir } = await import('node:fs/promises');
  t.deepEqual((await readdir(dir)).sort(), ['model.json', 'weights.bin']);
});

test('a truncated weights.bin is a ModelFormatError naming the file', async (t) => {
  const dir = await tempDir(t);
  await saveLayersModel(dir, tutorialCnn, initialParameters(tutorialCnn, 1));
  const bin = path.join(dir, 'weights.bin');
  await truncate(bin, 1000);
  const error = await t.throwsAsync(loadLayersModelWeights(dir), { instanceOf: ModelFormatError });
  t.true(error!.message.includes(bin), error!.message);
  t.regex(error!.message, /truncated/);
});

test('a model.json naming an unknown model is a ModelFormatError naming the file and the known models', async (t) => {
  const dir = await tempDir(t);
  await saveLayersModel(dir, tutorialCnn, initialParameters(tutorialCnn, 1));
  const jsonPath = path.join(dir, 'model.json');
  const json = JSON.parse(await readFile(jsonPath, 'utf8'));
  json.userDefinedMetadata.trainer.model = 'resnet9000';
  await writeFile(jsonPath, JSON.stringify(json));
  const error = await t.throwsAsync(loadLayersModelWeights(dir), { instanceOf: ModelFormatError });
  t.true(error!.message.includes(jsonPath), error!.message);
  t.regex(error!.message, /resnet9000.*tutorial/);
});

test('a manifest whose shapes differ from the model is a ModelFormatError', async (t) => {
  const dir = await tempDir(t);
  await saveLayersModel(dir, tutorialCnn, initialParameters(tutorialCnn, 1));
  const jsonPath = path.join(dir, 'model.json');
  const json = JSON.parse(await readFile(jsonPath, 'utf8'));
  json.weightsManifest[0].weights[4].shape = [120, 576];
  await writeFile(jsonPath, JSON.stringify(json));
  const error = await t.throwsAsync(loadLayersModelWeights(dir), { instanceOf: ModelFormatError });
  t.regex(error!.message, /fc1\/kernel/);
});

test('missing files and broken JSON are ModelFormatErrors naming the file', async (t) => {
  const dir = await tempDir(t);
  const missing = await t.throwsAsync(loadLayersModelWeights(dir), { instanceOf: ModelFormatError });
  t.true(missing!.message.includes(path.join(dir, 'model.json')));
  t.regex(missing!.message, /does not exist/);

  await saveLayersModel(dir, tutorialCnn, initialParameters(tutorialCnn, 1));
  await writeFile(path.join(dir, 'model.json'), '{"format": "layers-model", ');
  const broken = await t.throwsAsync(loadLayersModelWeights(dir), { instanceOf: ModelFormatError });
  t.regex(broken!.message, /not valid JSON/);

  await saveLayersModel(dir, tutorialCnn, initialParameters(tutorialCnn, 1));
  await rm(path.join(dir, 'weights.bin'));
  const noWeights = await t.throwsAsync(loadLayersModelWeights(dir), { instanceOf: ModelFormatError });
  t.true(noWeights!.message.includes(path.join(dir, 'weights.bin')));
});

test('saving a vector of the wrong length is refused', async (t) => {
  const dir = await tempDir(t);
  await t.throwsAsync(saveLayersModel(dir, tutorialCnn, new Float32Array(10)), { instanceOf: ModelFormatError });
});
