import test from 'ava';
import { diracInit } from '../src/model/dirac-init.ts';
import { CIFAR10_MEAN, CIFAR10_STD, normalizationLayerWeights } from '../src/model/input-normalization.ts';

// torch.nn.init.dirac_(w[:w.size(1)]) on w = arange(1, …) of shape [out, in, kh, kw] (Debian's python3-torch 1.13),
// permuted to TensorFlow's [kh, kw, in, out].
const TORCH: Record<string, number[]> = {
  '3x3x3x5': [0, 0, 0, 82, 109, 0, 0, 0, 91, 118, 0, 0, 0, 100, 127, 0, 0, 0, 83, 110, 0, 0, 0, 92, 119, 0, 0, 0, 101, 128, 0, 0, 0, 84, 111, 0, 0, 0, 93, 120, 0, 0, 0, 102, 129, 0, 0, 0, 85, 112, 0, 0, 0, 94, 121, 0, 0, 0, 103, 130, 1, 0, 0, 86, 113, 0, 1, 0, 95, 122, 0, 0, 1, 104, 131, 0, 0, 0, 87, 114, 0, 0, 0, 96, 123, 0, 0, 0, 105, 132, 0, 0, 0, 88, 115, 0, 0, 0, 97, 124, 0, 0, 0, 106, 133, 0, 0, 0, 89, 116, 0, 0, 0, 98, 125, 0, 0, 0, 107, 134, 0, 0, 0, 90, 117, 0, 0, 0, 99, 126, 0, 0, 0, 108, 135],
  '3x3x4x2': [...new Array(32).fill(0), 1, 0, 0, 1, ...new Array(36).fill(0)],
  '2x2x2x3': [0, 0, 17, 0, 0, 21, 0, 0, 18, 0, 0, 22, 0, 0, 19, 0, 0, 23, 1, 0, 20, 0, 1, 24],
};

test('diracInit is torch.nn.init.dirac_ on the first C_in filters, in TensorFlow layout; later filters keep their values', (t) => {
  for (const [key, expected] of Object.entries(TORCH)) {
    const [kh, kw, cin, cout] = key.split('x').map(Number);
    const kernel = new Float32Array(kh * kw * cin * cout);
    for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) for (let c = 0; c < cin; c++) for (let k = 0; k < cout; k++) {
      kernel[((y * kw + x) * cin + c) * cout + k] = ((k * cin + c) * kh + y) * kw + x + 1;
    }
    diracInit(kernel, [kh, kw, cin, cout]);
    t.deepEqual([...kernel], expected, key);
  }
});

test('diracInit works on a view of the flat vector and refuses a shape that does not fit', (t) => {
  const flat = new Float32Array(2 + 9 * 2 * 2 + 1).fill(0.5);
  diracInit(flat.subarray(2, 2 + 36), [3, 3, 2, 2]);
  t.is(flat[0], 0.5);
  t.is(flat[38], 0.5);
  t.is(flat.subarray(2, 38).reduce((a, b) => a + b, 0), 2);
  t.throws(() => diracInit(new Float32Array(10), [3, 3, 2, 2]), { instanceOf: RangeError, message: /has 36 values, got 10/ });
  t.throws(() => diracInit(new Float32Array(9), [3, 3, 1]), { instanceOf: RangeError, message: /\[kh, kw, in, out\]/ });
});

test('the normalisation layer (1×1 conv, diag(1/std), bias −mean/std) maps [0, 1] pixels to (x − mean)/std', (t) => {
  const { kernel, bias } = normalizationLayerWeights();
  t.is(kernel.length, 9);
  for (let c = 0; c < 3; c++) {
    for (let b = 0; b <= 255; b++) {
      const x = Math.fround(b / 255);
      let z = 0;
      for (let i = 0; i < 3; i++) z = Math.fround(z + Math.fround((i === c ? x : 0.3) * kernel[i * 3 + c]));
      z = Math.fround(z + bias[c]);
      const exact = (b / 255 - CIFAR10_MEAN[c]) / CIFAR10_STD[c];
      if (Math.abs(z - exact) > 1e-6) return t.fail(`channel ${c}, byte ${b}: ${z} vs ${exact}`);
    }
  }
  t.pass();
});
