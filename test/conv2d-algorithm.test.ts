import test from 'ava';
import { initBackend } from '../src/compute/backend.ts';
import { type Conv2dAlgorithm, MIN_WINOGRAD_CHANNELS, conv2dAlgorithm } from '../src/compute/kernels/conv2d-algorithm.ts';
import { conv2dBackpropFilterInto } from '../src/compute/kernels/conv2d-backprop-filter-wasm.ts';
import { correlateInto } from '../src/compute/kernels/conv2d-wasm.ts';
import { winogradBackpropFilterInto } from '../src/compute/kernels/winograd-conv2d-backprop-filter-wasm.ts';
import { winogradCorrelateInto } from '../src/compute/kernels/winograd-conv2d-wasm.ts';
import { realistic, runKernel, sameBytes, size } from './helpers/conv-reference.ts';

test('the rule: Winograd F(4×4) for 3×3 filters with enough channels and outputs of at least 3×3, direct otherwise', (t) => {
  // kh, kw, cin, cout, oh, ow → algorithm
  const table: [number, number, number, number, number, number, Conv2dAlgorithm][] = [
    [3, 3, 3, 32, 32, 32, 'direct'], // bn-cnn conv1: 3 input channels
    [3, 3, 32, 3, 32, 32, 'direct'], // …and its input gradient
    [3, 3, 32, 32, 32, 32, 'winograd-f4'],
    [3, 3, 64, 128, 8, 8, 'winograd-f4'],
    [3, 3, 24, 64, 31, 31, 'winograd-f4'], // airbench's first 3×3 layer, odd size
    [3, 3, 256, 256, 3, 3, 'winograd-f4'],
    [3, 3, 256, 256, 2, 2, 'direct'],
    [3, 3, MIN_WINOGRAD_CHANNELS, MIN_WINOGRAD_CHANNELS, 5, 5, 'winograd-f4'],
    [3, 3, MIN_WINOGRAD_CHANNELS - 1, 64, 5, 5, 'direct'],
    [3, 3, 6, 16, 13, 13, 'direct'], // the tutorial CNN's conv2
    [2, 2, 3, 24, 31, 31, 'direct'], // airbench's whitening layer
    [5, 5, 64, 64, 16, 16, 'direct'],
    [1, 1, 64, 64, 16, 16, 'direct'],
  ];
  for (const [kh, kw, cin, cout, oh, ow, expected] of table) t.is(conv2dAlgorithm(kh, kw, cin, cout, oh, ow), expected, `${kh}×${kw} ${cin}→${cout} at ${oh}×${ow}`);
});

// What the registered wasm kernels compute is, byte for byte, the kernel the rule names.
const LAYERS = [
  { name: 'bn-cnn conv1 3→32 (direct)', x: [2, 32, 32, 3], cout: 32, winograd: false },
  { name: 'bn-cnn conv4 64→64 (F(4×4))', x: [2, 16, 16, 64], cout: 64, winograd: true },
  { name: 'airbench 24→64 31×31 (F(4×4))', x: [1, 31, 31, 24], cout: 64, winograd: true },
];

for (const c of LAYERS) {
  test.serial(`the registered Conv2D, Conv2DBackpropInput and Conv2DBackpropFilter run the rule's kernel: ${c.name}`, async (t) => {
    const [n, h, w, cin] = c.x;
    const filterShape = [3, 3, cin, c.cout];
    const yShape = [n, h, w, c.cout];
    const x = realistic(size(c.x), 1, 1, true);
    const filter = realistic(size(filterShape), 2, 0.1);
    const dy = realistic(size(yShape), 3, 1e-2);
    t.is(await initBackend('wasm'), 'wasm');
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: 1 };
    const y = runKernel('Conv2D', { x: [x, c.x], filter: [filter, filterShape] }, attrs);
    const dx = runKernel('Conv2DBackpropInput', { dy: [dy, yShape], filter: [filter, filterShape] }, { ...attrs, inputShape: c.x });
    const dw = runKernel('Conv2DBackpropFilter', { x: [x, c.x], dy: [dy, yShape] }, { ...attrs, filterShape });
    const ey = new Float32Array(size(yShape));
    const edx = new Float32Array(size(c.x));
    const edw = new Float32Array(size(filterShape));
    if (c.winograd) {
      winogradCorrelateInto(x, c.x, 1, 1, filter, 'forward', h, w, c.cout, ey, 4);
      winogradCorrelateInto(dy, yShape, 1, 1, filter, 'backprop-input', h, w, cin, edx, 4);
      winogradBackpropFilterInto(x, c.x, dy, yShape, 1, 1, edw, 4);
    } else {
      correlateInto(x, c.x, 1, 1, filter, 3, 3, 'forward', h, w, c.cout, ey);
      correlateInto(dy, yShape, 1, 1, filter, 3, 3, 'backprop-input', h, w, cin, edx);
      conv2dBackpropFilterInto(x, c.x, dy, yShape, 3, 3, 1, 1, edw);
    }
    t.true(sameBytes(y, ey), 'Conv2D');
    t.true(sameBytes(dx, edx), 'Conv2DBackpropInput');
    t.true(sameBytes(dw, edw), 'Conv2DBackpropFilter');
    t.false(sameBytes(y, (() => {
      const other = new Float32Array(size(yShape));
      if (c.winograd) correlateInto(x, c.x, 1, 1, filter, 3, 3, 'forward', h, w, c.cout, other);
      else winogradCorrelateInto(x, c.x, 1, 1, filter, 'forward', h, w, c.cout, other, 4);
      return other;
    })()), 'the other algorithm rounds differently (so the comparison above can tell them apart)');
  });
}
