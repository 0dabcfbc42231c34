import test from 'ava';
import { MAX_POOL_GRAD_2X2_WASM_URL, maxPoolGrad2x2Into } from '../src/compute/kernels/max-pool-grad-2x2-wasm.ts';
import { SeededRandom } from '../src/random/seeded-random.ts';
import { assertCommittedWasmIsFresh } from './helpers/committed-wasm.ts';

/** The reference: the plain JavaScript loop the module replaced (first strict maximum from −∞, dx = 0 + dy). */
function reference(x: Float32Array, [n, h, w, c]: readonly number[], dy: Float32Array, oh: number, ow: number): Float32Array {
  const dx = new Float32Array(n * h * w * c);
  let gi = 0;
  for (let b = 0; b < n; b++) {
    for (let r = 0; r < oh; r++) {
      for (let q = 0; q < ow; q++) {
        for (let d = 0; d < c; d++, gi++) {
          let best = Number.NEGATIVE_INFINITY;
          let at = -1;
          for (const [i, j] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
            const k = ((b * h + 2 * r + i) * w + 2 * q + j) * c + d;
            if (x[k] > best) {
              best = x[k];
              at = k;
            }
          }
          if (at >= 0) dx[at] += dy[gi];
        }
      }
    }
  }
  return dx;
}

const SPECIAL = [0, -0, NaN, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY, 1, 1, -1];

/** Values with many ties, and (special) −0, NaN and ±∞ among them. */
function values(count: number, seed: number, special: boolean): Float32Array {
  const rng = new SeededRandom(seed, 41);
  return Float32Array.from({ length: count }, () => (special && rng.nextFloat() < 0.3 ? SPECIAL[rng.nextInt(SPECIAL.length)] : rng.nextInt(5) - 2));
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

for (const [shape, special] of [
  [[2, 32, 32, 32], false], // bn-cnn's pools
  [[3, 8, 8, 128], false],
  [[2, 12, 12, 8], true],
  [[2, 13, 11, 6], true], // odd sizes: the last row and column are in no window; 6 = 4 + 2 channels
  [[1, 4, 6, 3], true],
  [[1, 1, 1, 5], false], // no window at all
] as const) {
  test(`matches the JavaScript loop bit for bit: [${shape}]${special ? ', with −0, NaN, ±∞ and ties' : ', ties'}`, (t) => {
    const [n, h, w, c] = shape;
    const oh = Math.floor(h / 2);
    const ow = Math.floor(w / 2);
    const x = values(n * h * w * c, h * w + c, special);
    const dy = values(n * oh * ow * c, 7 + c, special);
    const dx = new Float32Array(n * h * w * c).fill(Number.NaN); // the kernel must write every element
    maxPoolGrad2x2Into(x, shape, dy, oh, ow, dx);
    t.deepEqual(bits(dx), bits(reference(x, shape, dy, oh, ow)));
  });
}

test('the committed max-pool-grad-2x2.wasm is what npm run build:wasm builds from the source', (t) =>
  assertCommittedWasmIsFresh(t, 'build:wasm:max-pool-grad', MAX_POOL_GRAD_2X2_WASM_URL));
