import test from 'ava';
import { createHash } from 'node:crypto';
import { flipTranslateChoice, flipTranslateImage, flipTranslateShard } from '../src/data/flip-translate-augmentation.ts';
import { reflectIndex } from '../src/data/reflect-padding.ts';
import { IMAGE_BYTES } from '../src/data/cifar10-dataset.ts';
import { fixtureImages, TORCH_REFERENCE } from './fixtures/recipe-reference-inputs.ts';

const sha256 = (a: Uint8Array) => createHash('sha256').update(a).digest('hex');

test('reflectIndex is PyTorch\'s reflect padding: the edge is not repeated', (t) => {
  t.deepEqual([-2, -1, 0, 31, 32, 33].map((i) => reflectIndex(i, 32)), [2, 1, 0, 31, 30, 29]);
});

test('the augmented pixels are airbench\'s (torch: pre-flip, reflect pad 2, crop at the shift, flip all on odd epochs)', (t) => {
  const ref = TORCH_REFERENCE.augmentation;
  const images = fixtureImages(ref.images);
  for (const { airbenchEpoch, sha256: expected } of ref.cases) {
    const out = new Uint8Array(ref.images * IMAGE_BYTES);
    for (let i = 0; i < ref.images; i++) {
      const [dy, dx] = ref.shifts[i];
      flipTranslateImage(images, i * IMAGE_BYTES, out, i * IMAGE_BYTES, { dy, dx, baseFlip: ref.baseFlip[i], flipAll: airbenchEpoch % 2 === 1 });
    }
    t.is(sha256(out), expected, `airbench epoch ${airbenchEpoch}`);
  }
  const out = new Uint8Array(IMAGE_BYTES);
  flipTranslateImage(images, 0, out, 0, { dy: 0, dx: 0, baseFlip: false, flipAll: false });
  t.deepEqual(out, images.subarray(0, IMAGE_BYTES), 'no shift, no flip: the image itself');
  t.throws(() => flipTranslateImage(images, 0, out, 0, { dy: 3, dx: 0, baseFlip: false, flipAll: false }), { instanceOf: RangeError });
});

test('draws: the flip once per run and image (about half), the shift per epoch and image over all 25 offsets, every image mirrored on even epochs', (t) => {
  let flips = 0;
  const shifts = new Set<string>();
  for (let i = 0; i < 4000; i++) {
    const first = flipTranslateChoice(7, 1, i);
    const later = flipTranslateChoice(7, 6, i);
    t.is(later.baseFlip, first.baseFlip);
    if (first.baseFlip) flips++;
    shifts.add(`${first.dy},${first.dx}`);
    t.false(first.flipAll);
    t.true(later.flipAll);
  }
  t.true(flips > 1850 && flips < 2150, `${flips} of 4000 mirrored`);
  t.is(shifts.size, 25);
  t.deepEqual(flipTranslateChoice(7, 3, 11), flipTranslateChoice(7, 3, 11));
  const differs = (a: object, b: object) => JSON.stringify(a) !== JSON.stringify(b);
  t.true([...Array(20).keys()].some((i) => differs(flipTranslateChoice(7, 3, i), flipTranslateChoice(7, 5, i))), 'other epoch, other shifts');
  t.true([...Array(20).keys()].some((i) => flipTranslateChoice(7, 1, i).baseFlip !== flipTranslateChoice(8, 1, i).baseFlip), 'other seed, other flips');
  t.throws(() => flipTranslateChoice(7, 0, 1), { instanceOf: RangeError, message: /count from 1/ });
});

test('flipTranslateShard: image k is the augmented image indices[k], with its label; the buffer is reused', (t) => {
  const images = fixtureImages(6);
  const labels = Uint8Array.of(0, 1, 2, 3, 4, 5);
  const indices = Int32Array.of(4, 1, 4);
  const shard = flipTranslateShard(3, 2, images, labels, indices);
  t.deepEqual([...shard.labels], [4, 1, 4]);
  const one = new Uint8Array(IMAGE_BYTES);
  flipTranslateImage(images, 4 * IMAGE_BYTES, one, 0, flipTranslateChoice(3, 2, 4));
  t.deepEqual(shard.images.subarray(0, IMAGE_BYTES), one);
  t.deepEqual(shard.images.subarray(2 * IMAGE_BYTES, 3 * IMAGE_BYTES), one);
  t.is(flipTranslateShard(3, 2, images, labels, indices.subarray(0, 2), shard), shard);
});
