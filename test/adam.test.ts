import test from 'ava';
import { adamStep, newAdamState } from '../src/train/adam.ts';

// Reference: torch.optim.Adam(lr=0.1) on p = [1, -2] with gradients [0.5, 3], [-0.25, 0], [1, -0.001]
// (Debian's python3-torch 1.13, float32: we agree to an ulp or two); the first column also checked by hand: 0.9, 0.873366, 0.807555.
const TORCH = [
  [0.9000000357627869, -2.0999999046325684],
  [0.8733663558959961, -2.167005777359009],
  [0.8075551986694336, -2.218780040740967],
];

test('adamStep follows torch.optim.Adam step by step', (t) => {
  const params = new Float32Array([1, -2]);
  const state = newAdamState(2);
  const grads = [[0.5, 3], [-0.25, 0], [1, -0.001]];
  grads.forEach((g, k) => {
    adamStep(params, new Float32Array(g), state, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
    t.is(state.step, k + 1);
    for (let i = 0; i < 2; i++) t.true(Math.abs(params[i] - TORCH[k][i]) < 5e-7, `step ${k + 1} param ${i}: ${params[i]} vs ${TORCH[k][i]}`);
  });
  t.true(Math.abs(state.m[0] - 0.118) < 1e-7);
  t.true(Math.abs(state.v[0] - 0.00131193775) < 1e-9);
});

test('a zero gradient on a fresh state leaves parameters unchanged', (t) => {
  const params = new Float32Array([0.25, -1.5, 3]);
  adamStep(params, new Float32Array(3), newAdamState(3), { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
  t.deepEqual([...params], [0.25, -1.5, 3]);
});
