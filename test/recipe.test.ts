import test from 'ava';
import { randomImageSet } from './fixtures/random-image-set.ts';
import * as tf from '@tensorflow/tfjs-core';
import { augmentChoice, augmentImage, augmentShard, CROP_PADDING } from '../src/data/augmentation.ts';
import { IMAGE_BYTES, type ImageSet } from '../src/data/cifar10-dataset.ts';
import { ShardComputer } from '../src/compute/shard-computer.ts';
import { tutorialCnn } from '../src/model/tutorial-cnn.ts';
import { initialParameters, parameterCount } from '../src/model/parameter-vector.ts';
import { loadCifar10 } from '../src/data/cifar10-dataset.ts';
import { writeCifar10Fixture } from './fixtures/cifar10-fixture.ts';
import { recordRun, settingsFor } from './helpers/training-run.ts';

const P = parameterCount(tutorialCnn);

const randomSet = (count: number, seed: number) => randomImageSet(count, seed, 9);

const pixel = (img: Uint8Array, y: number, x: number, c: number) => img[(y * 32 + x) * 3 + c];

test('augmentation crops the zero-padded image at the drawn offset and mirrors it when drawn', (t) => {
  const src = randomSet(1, 1).images;
  const out = new Uint8Array(IMAGE_BYTES);
  for (const choice of [{ dx: 0, dy: 0, flip: false }, { dx: 8, dy: 3, flip: false }, { dx: 4, dy: 4, flip: true }, { dx: 1, dy: 7, flip: true }]) {
    augmentImage(src, 0, out, 0, choice);
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const sx = (choice.flip ? 31 - x : x) + choice.dx - CROP_PADDING;
        const sy = y + choice.dy - CROP_PADDING;
        const inside = sx >= 0 && sx < 32 && sy >= 0 && sy < 32;
        for (let c = 0; c < 3; c++) {
          if (pixel(out, y, x, c) !== (inside ? pixel(src, sy, sx, c) : 0)) return t.fail(`${JSON.stringify(choice)} at ${y},${x},${c}`);
        }
      }
    }
  }
  augmentImage(src, 0, out, 0, { dx: 4, dy: 4, flip: false });
  t.deepEqual(out, src, 'the centred crop without flip is the image itself');
});

test('augmentation choices are seeded per run, step and image, and cover every offset and both flips', (t) => {
  t.deepEqual(augmentChoice(3, 10, 77), augmentChoice(3, 10, 77));
  const seen = new Set<string>();
  let flips = 0;
  for (let i = 0; i < 2000; i++) {
    const c = augmentChoice(3, 10, i);
    seen.add(`${c.dx},${c.dy}`);
    flips += c.flip ? 1 : 0;
  }
  t.is(seen.size, 81);
  t.true(flips > 900 && flips < 1100, `${flips} flips of 2000`);
  const differs = (a: object, b: object) => JSON.stringify(a) !== JSON.stringify(b);
  t.true([...Array(20).keys()].some((i) => differs(augmentChoice(3, 10, i), augmentChoice(3, 11, i))), 'another step, other choices');
  t.true([...Array(20).keys()].some((i) => differs(augmentChoice(3, 10, i), augmentChoice(4, 10, i))), 'another seed, other choices');
});

for (const backend of ['fused', 'wasm'] as const) {
  test.serial(`${backend}: an augmented shard's gradient is the plain gradient of the augmented images`, async (t) => {
    const train = randomSet(20, 2);
    const test = randomSet(4, 3);
    const indices = Int32Array.of(7, 2, 19, 2);
    const w = initialParameters(tutorialCnn, 4);
    const augmented = await ShardComputer.create(tutorialCnn, { train, test }, backend, { recipe: { seed: 11, augmentation: 'crop-flip', labelSmoothing: 0, stepsPerEpoch: 1 } });
    augmented.setWeights(w);
    const got = augmented.gradient(indices, 5);
    t.deepEqual(augmented.gradient(indices, 5), got, 'same step, same bytes');
    t.notDeepEqual(augmented.gradient(indices, 6), got, 'another step, other crops');

    const copies = augmentShard(11, 5, train.images, train.labels, indices);
    const manual: ImageSet = { count: 4, images: copies.images, labels: copies.labels };
    const plain = await ShardComputer.create(tutorialCnn, { train: manual, test }, backend);
    plain.setWeights(w);
    t.deepEqual(plain.gradient(Int32Array.of(0, 1, 2, 3)), got);
  });
}

test.serial('label smoothing: fused and tfjs agree, and the loss is the smoothed cross-entropy', async (t) => {
  const train = randomSet(16, 5);
  const test = randomSet(4, 6);
  const indices = Int32Array.from({ length: 16 }, (_, i) => i);
  const w = initialParameters(tutorialCnn, 8);
  const recipe = { seed: 1, augmentation: 'none', labelSmoothing: 0.1, stepsPerEpoch: 1 } as const;
  const fused = await ShardComputer.create(tutorialCnn, { train, test }, 'fused', { recipe });
  const cpu = await ShardComputer.create(tutorialCnn, { train, test }, 'cpu', { recipe });
  const plain = await ShardComputer.create(tutorialCnn, { train, test }, 'fused');
  for (const c of [fused, cpu, plain]) c.setWeights(w);
  const a = fused.gradient(indices);
  const b = cpu.gradient(indices);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < P; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  t.true(diff <= 3e-5 * scale, `max |fused − cpu| ${diff} vs ${scale}`);
  t.true(Math.abs(a[P] - b[P]) < 1e-5 * Math.abs(b[P]));

  // The smoothed loss from the logits, in float64: Σ_i Σ_c target_c · (logsumexp − z_c).
  tf.setBackend('cpu');
  const params = [];
  let offset = 0;
  for (const spec of tutorialCnn.parameters) {
    const size = spec.shape.reduce((x, y) => x * y, 1);
    params.push(tf.tensor(w.slice(offset, offset + size), spec.shape as number[]));
    offset += size;
  }
  const x = tf.tensor4d(Float32Array.from(train.images, (v) => v / 255), [16, 32, 32, 3]);
  const logits = tutorialCnn.logits(params, x).dataSync();
  let expected = 0;
  for (let i = 0; i < 16; i++) {
    const z = Array.from(logits.subarray(i * 10, i * 10 + 10));
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0));
    z.forEach((zc, c) => (expected += (c === train.labels[i] ? 0.91 : 0.01) * (lse - zc)));
  }
  t.true(Math.abs(a[P] - expected) < 1e-4 * expected, `${a[P]} vs ${expected}`);
  t.not(plain.gradient(indices)[P], a[P], 'without smoothing, the plain cross-entropy');
});

test('with augmentation and label smoothing, weights after every step are byte-identical with 1 and 2 threads', async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 6, testCount: 10 });
  t.teardown(fixture.cleanup);
  const dataset = await loadCifar10(fixture.dir);
  const settings = settingsFor(dataset, { backend: 'fused', augmentation: 'crop-flip', labelSmoothing: 0.1, epochs: 2, shards: 3 });
  const one = await recordRun(dataset, settings, { threads: 1 });
  const two = await recordRun(dataset, settings, { threads: 2 });
  t.deepEqual(two.stepHashes, one.stepHashes);
  const plain = await recordRun(dataset, settingsFor(dataset, { backend: 'fused', epochs: 2, shards: 3 }), { threads: 2 });
  t.notDeepEqual(plain.stepHashes, one.stepHashes, 'the recipe changes the run');
});
