import { IMAGE_BYTES, IMAGE_CHANNELS, IMAGE_HEIGHT, IMAGE_WIDTH } from '../data/cifar10-dataset.ts';
import { reflectIndex } from '../data/reflect-padding.ts';

/**
 * airbench's test-time augmentation (its infer with tta_level 2, the default; 1 and 0 are its lighter levels):
 * the network's logits on views of each test image, combined as
 *   level 2:  0.5 · mirror(image) + 0.5 · mean(mirror(up-left), mirror(down-right))
 *   level 1:  mirror(image)            level 0: the image's logits
 * with mirror(v) = 0.5 · logits(v) + 0.5 · logits(v flipped left-right). The translated views are the 32×32
 * corners of the 1-px reflect-padded image: up-left (out(y, x) = in(y − 1, x − 1), reflected at the border) and
 * down-right (in(y + 1, x + 1)). Weights per view: 1/4 for the image and its mirror, 1/8 for each of the other
 * four. Logits are averaged (not probabilities), in float32 in torch's order, so the combination equals
 * airbench's bit for bit.
 *
 * Views are built on the NHWC bytes (flips and reflect-padded shifts commute with the network's per-pixel
 * normalisation), view-major: view v of image i is image v·count + i of the views batch.
 */
export type TtaLevel = 0 | 1 | 2;

/** Views per image at each level. */
export const TTA_VIEWS: Readonly<Record<TtaLevel, number>> = { 0: 1, 1: 2, 2: 6 };

/** View v's row and column shift and mirror flag: [image, mirrored, up-left, mirrored, down-right, mirrored]. */
const VIEWS: readonly { readonly shift: number; readonly flip: boolean }[] = [
  { shift: 0, flip: false }, { shift: 0, flip: true },
  { shift: -1, flip: false }, { shift: -1, flip: true },
  { shift: 1, flip: false }, { shift: 1, flip: true },
];

/** The views of `count` NHWC byte images (image i at i·3072 of `images`), view-major, into `out` when given. */
export function ttaViews(images: Uint8Array, count: number, level: TtaLevel = 2, out?: Uint8Array): Uint8Array {
  const views = TTA_VIEWS[level];
  if (views === undefined) throw new RangeError(`TTA level must be 0, 1 or 2, got ${String(level)}.`);
  if (!Number.isSafeInteger(count) || count < 0 || images.length < count * IMAGE_BYTES) {
    throw new RangeError(`ttaViews: ${images.length} bytes do not hold ${count} images.`);
  }
  const dst = out ?? new Uint8Array(views * count * IMAGE_BYTES);
  if (dst.length < views * count * IMAGE_BYTES) throw new RangeError(`ttaViews: the output holds ${dst.length} bytes, fewer than ${views * count * IMAGE_BYTES}.`);
  const last = IMAGE_WIDTH - 1;
  for (let v = 0; v < views; v++) {
    const { shift, flip } = VIEWS[v];
    for (let i = 0; i < count; i++) {
      const src = i * IMAGE_BYTES;
      const to0 = (v * count + i) * IMAGE_BYTES;
      for (let y = 0; y < IMAGE_HEIGHT; y++) {
        const sy = reflectIndex(y + shift, IMAGE_HEIGHT);
        for (let x = 0; x < IMAGE_WIDTH; x++) {
          // The mirror of the shifted view: column x of the mirror is column 31 − x of the shifted image.
          const sx = reflectIndex((flip ? last - x : x) + shift, IMAGE_WIDTH);
          const from = src + (sy * IMAGE_WIDTH + sx) * IMAGE_CHANNELS;
          const to = to0 + (y * IMAGE_WIDTH + x) * IMAGE_CHANNELS;
          dst[to] = images[from];
          dst[to + 1] = images[from + 1];
          dst[to + 2] = images[from + 2];
        }
      }
    }
  }
  return dst;
}

/**
 * The combined logits [count, classes] from the views' logits [views·count, classes] (view-major, as ttaViews
 * orders the images), each operation rounded to float32 as torch computes airbench's expression.
 */
export function combineTtaLogits(viewLogits: Float32Array, count: number, classes: number, level: TtaLevel = 2, out?: Float32Array): Float32Array {
  const views = TTA_VIEWS[level];
  if (views === undefined) throw new RangeError(`TTA level must be 0, 1 or 2, got ${String(level)}.`);
  const n = count * classes;
  if (viewLogits.length !== views * n) {
    throw new RangeError(`combineTtaLogits: ${viewLogits.length} logits for ${views} views of ${count} images × ${classes} classes.`);
  }
  const result = out ?? new Float32Array(n);
  const f = Math.fround;
  const mirror = (a: number, b: number) => f(f(0.5 * a) + f(0.5 * b));
  for (let j = 0; j < n; j++) {
    const l = (v: number) => viewLogits[v * n + j];
    if (level === 0) result[j] = l(0);
    else if (level === 1) result[j] = mirror(l(0), l(1));
    else {
      // torch.stack([...]).mean(0): the sum of the two, then ÷ 2.
      const translated = f(f(mirror(l(2), l(3)) + mirror(l(4), l(5))) / 2);
      result[j] = mirror(mirror(l(0), l(1)), translated);
    }
  }
  return result;
}
