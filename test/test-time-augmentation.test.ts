import test from 'ava';
import { createHash } from 'node:crypto';
import { combineTtaLogits, TTA_VIEWS, ttaViews } from '../src/eval/test-time-augmentation.ts';
import { IMAGE_BYTES } from '../src/data/cifar10-dataset.ts';
import { fixtureImages, lcgFloats, TORCH_REFERENCE } from './fixtures/recipe-reference-inputs.ts';

const ref = TORCH_REFERENCE.tta;
const sha256 = (a: Uint8Array) => createHash('sha256').update(a).digest('hex');

test('the six views are airbench\'s: image, mirror, up-left and down-right corners of the 1-px reflect-padded image, and their mirrors', (t) => {
  const images = fixtureImages(ref.images);
  const views = ttaViews(images, ref.images);
  t.is(views.length, 6 * ref.images * IMAGE_BYTES);
  ref.viewSha256.forEach((digest, v) => t.is(sha256(views.subarray(v * ref.images * IMAGE_BYTES, (v + 1) * ref.images * IMAGE_BYTES)), digest, `view ${v}`));
  t.deepEqual(ttaViews(images, ref.images, 1), views.subarray(0, 2 * ref.images * IMAGE_BYTES), 'level 1: the first two');
  t.deepEqual(ttaViews(images, ref.images, 0), images.subarray(0, ref.images * IMAGE_BYTES));
  const reused = new Uint8Array(views.length);
  t.is(ttaViews(images, ref.images, 2, reused), reused);
  t.throws(() => ttaViews(images, ref.images + 1), { instanceOf: RangeError });
});

test('the views\' logits combine as airbench\'s infer_mirror_translate, bit for bit', (t) => {
  const logits = new Float32Array(6 * ref.images * 10);
  ref.logitSeeds.forEach((seed, v) => logits.set(lcgFloats(ref.images * 10, seed, ref.logitScale), v * ref.images * 10));
  const combined = combineTtaLogits(logits, ref.images, 10);
  t.deepEqual([...combined], ref.combined);
  // Weights 1/4, 1/4, 1/8 × 4 (to rounding):
  for (let j = 0; j < combined.length; j++) {
    const l = (v: number) => logits[v * 30 + j];
    const expected = (l(0) + l(1)) / 4 + (l(2) + l(3) + l(4) + l(5)) / 8;
    if (Math.abs(combined[j] - expected) > 1e-5) return t.fail(`${j}: ${combined[j]} vs ${expected}`);
  }
  t.deepEqual([...combineTtaLogits(logits.subarray(0, 60), 3, 10, 1)], Array.from({ length: 30 }, (_, j) => Math.fround(Math.fround(0.5 * logits[j]) + Math.fround(0.5 * logits[30 + j]))));
  t.throws(() => combineTtaLogits(logits, 3, 9), { instanceOf: RangeError });
  t.is(TTA_VIEWS[2], 6);
});
