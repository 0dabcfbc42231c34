import test from 'ava';
import { newSgdState, type ParameterGroup, sgdStep, type SgdOptions } from '../src/train/sgd.ts';
import { Optimizer, type ParameterRange } from '../src/train/optimizer/optimizer.ts';
import { f32FromBase64, lcgFloats, TORCH_REFERENCE, ulps } from './fixtures/recipe-reference-inputs.ts';

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Pseudo-random floats over several magnitudes, with ±0 mixed in. */
function floats(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return Float32Array.from({ length: n }, () => {
    const r = next();
    return r < 0.02 ? 0 : r < 0.04 ? -0 : (next() - 0.5) * scale * 10 ** (next() * 4 - 3);
  });
}

const groups = (lr: number, n: number): ParameterGroup[] => [
  { name: 'norm-biases', ranges: [[0, 7], [40, 45]], lr: lr * 64, weightDecay: 0.002 / (lr * 64) },
  { name: 'other', ranges: [[7, 30], [45, n - 3]], lr, weightDecay: 0.002 / lr },
];

/** The JS reference over several steps: the ordered sum reduced by `divisor`, then sgdStep. */
function reference(weights: Float32Array, steps: Float32Array[][], divisor: number, options: SgdOptions[]) {
  const w = weights.slice();
  const state = newSgdState(w.length);
  const g = new Float32Array(w.length);
  steps.forEach((results, k) => {
    g.fill(0);
    for (const r of results) for (let i = 0; i < g.length; i++) g[i] += r[i];
    for (let i = 0; i < g.length; i++) g[i] /= divisor;
    sgdStep(w, g, state, options[k]);
  });
  return { w, state };
}

for (const [n, shards, nesterov, momentum] of [[1_031, 2, true, 0.85], [203, 3, false, 0.9], [66, 1, true, 0], [1_031, 1, false, 0]] as const) {
  test(`wasm SGD equals the JS reference bit for bit (${n} parameters, ${shards} shards, nesterov ${nesterov}, momentum ${momentum})`, (t) => {
    const weights = floats(n, 1);
    const steps = Array.from({ length: 5 }, (_, k) => Array.from({ length: shards }, (_, s) => floats(n + 2, 50 + 10 * k + s, 64)));
    const options: SgdOptions[] = steps.map((_, k) => ({
      momentum, nesterov,
      // Step 2 leaves the second group out (frozen for a step: its buffer waits), step 3 adds a group that
      // starts its buffer there.
      groups: k === 2 ? groups(0.0015 * (k + 1), n).slice(0, 1)
        : k >= 3 ? [...groups(0.0015, n), { name: 'late', ranges: [[30, 40]], lr: 0.01, weightDecay: 0 }] : groups(0.0015, n),
    }));
    const ref = reference(weights, steps, 1, options);
    const opt = Optimizer.create({ weights, shards });
    for (let k = 0; k < steps.length; k++) {
      opt.averageShards(steps[k], 1024, 'sum');
      opt.sgdStep(options[k]);
    }
    t.is(opt.sgd.step, 5);
    t.true(bytes(opt.weights).equals(bytes(ref.w)), 'weights');
    t.true(bytes(opt.sgd.momentum).equals(bytes(ref.state.momentum)), 'momentum buffer');
    t.deepEqual(opt.sgd.started, ref.state.started);
    t.deepEqual(opt.sgd.started, momentum === 0 ? [] : [[0, n - 3]]);
    for (let i = n - 3; i < n; i++) t.is(opt.weights[i], weights[i], 'an entry in no group is left alone');
    let moved = 0;
    for (let i = 0; i < n - 3; i++) if (opt.weights[i] !== weights[i]) moved++;
    t.true(moved > 0.9 * (n - 3), `${moved} weights moved`);
  });
}

test('SGD follows torch.optim.SGD with airbench\'s parameter groups: bit for bit its order of operations, within ulps its fused kernels', (t) => {
  const ref = TORCH_REFERENCE.sgd;
  const { n } = ref.inputs;
  const weights = lcgFloats(n, ref.inputs.weightsSeed, ref.inputs.weightsScale);
  weights.set(ref.inputs.head);
  const grads = ref.inputs.gradSeeds.map((seed) => lcgFloats(n, seed, ref.inputs.gradScale));
  grads[0].set(ref.inputs.gradHead, 150);
  const { norm, other, whiten_bias: whitenBias } = ref.slices;
  const { lr, lrBiases, weightDecay: wd, momentum } = ref.hyper;
  const opt = Optimizer.create({ weights, shards: 1 });
  let exact = 0;
  let worst = 0;
  const scale = new Float64Array(n);
  ref.factors.forEach((factor, k) => {
    const result = new Float32Array(n + 2);
    result.set(grads[k]);
    opt.averageShards([result], ref.hyper.batchSize, 'sum');
    const others: ParameterRange[] = k < ref.biasSteps ? [other, whitenBias] : [other];
    opt.sgdStep({
      momentum, nesterov: true, groups: [
        { name: 'norm-biases', ranges: [norm], lr: lrBiases * factor, weightDecay: wd / lrBiases },
        { name: 'other', ranges: others, lr: lr * factor, weightDecay: wd / lr },
      ],
    });
    const unfused = f32FromBase64(ref.unfused[k].weights);
    t.true(bytes(opt.weights).equals(bytes(unfused)), `step ${k + 1}: weights equal torch's unfused ops bit for bit`);
    t.true(bytes(opt.sgd.momentum).equals(bytes(f32FromBase64(ref.unfused[k].momentum))), `step ${k + 1}: momentum buffer`);
    const fused = f32FromBase64(ref.torch[k].weights);
    const before = k === 0 ? weights : f32FromBase64(ref.torch[k - 1].weights);
    for (let i = 0; i < n; i++) {
      if (opt.weights[i] === fused[i]) exact++;
      // torch's kernels fuse d + wd·p, d + μ·b and p − lr·d (FMA): one rounding fewer each, and a difference
      // carries over to later steps. Compared at the scale of what the element's steps have involved so far
      // (weights before and after, updates): a weight that nearly cancels differs by many ulps of itself.
      scale[i] = Math.max(scale[i], Math.abs(before[i]), Math.abs(fused[i]), Math.abs(fused[i] - before[i]));
      if (scale[i] > 0) worst = Math.max(worst, Math.abs(opt.weights[i] - fused[i]) / scale[i]);
    }
  });
  t.log(`torch.optim.SGD (fused): ${exact} of ${n * ref.factors.length} weights bit-identical; worst |Δ| / scale ${worst.toExponential(2)}`);
  t.true(worst < 2 ** -21, `worst relative difference ${worst}`);
  t.true(exact > 0.75 * n * ref.factors.length, `${exact} bit-identical`);
  // The frozen tensor and the stopped whitening bias: untouched after its last step.
  const last = f32FromBase64(ref.torch[ref.factors.length - 1].weights);
  for (let i = ref.slices.frozen[0]; i < n; i++) t.is(last[i], weights[i]);
  const afterBias = f32FromBase64(ref.unfused[ref.biasSteps - 1].weights);
  const torchAfterBias = f32FromBase64(ref.torch[ref.biasSteps - 1].weights);
  for (let i = whitenBias[0]; i < whitenBias[1]; i++) {
    t.is(opt.weights[i], afterBias[i], 'the whitening bias stops after its steps');
    t.is(last[i], torchAfterBias[i], 'in torch too');
  }
});

test('a group\'s buffer starts as its first d_p (torch clones it), also for a range that joins later', (t) => {
  const weights = Float32Array.of(1, 2, 0, 4);
  const opt = Optimizer.create({ weights, shards: 1 });
  const g = Float32Array.of(0.5, 3, -1, 8, 0, 0);
  opt.averageShards([g], 1, 'sum');
  opt.sgdStep({ momentum: 0.9, nesterov: false, groups: [{ name: 'a', ranges: [[0, 3]], lr: 0.5, weightDecay: 0 }] });
  t.deepEqual([...opt.sgd.momentum], [0.5, 3, -1, 0]);
  t.deepEqual([...opt.weights], [0.75, 0.5, 0.5, 4]);
  opt.averageShards([g], 1, 'sum');
  opt.sgdStep({ momentum: 0.9, nesterov: false, groups: [{ name: 'a', ranges: [[0, 4]], lr: 0.5, weightDecay: 0 }] });
  const f = Math.fround;
  t.is(opt.sgd.momentum[0], f(f(f(0.9) * 0.5) + 0.5), 'an existing buffer: μ·b + d');
  t.is(opt.sgd.momentum[3], 8, 'the range joining now starts with d itself');
  t.is(opt.weights[3], 0);
  t.deepEqual(opt.sgd.started, [[0, 4]]);
});

test('the JS reference clones d_p bit for bit on a first step: a -0 gradient gives a -0 buffer (a zero buffer would give μ·0 + −0 = +0)', (t) => {
  const state = newSgdState(2);
  const params = Float32Array.of(0, 1);
  sgdStep(params, Float32Array.of(-0, -0), state, { momentum: 0.9, nesterov: true, groups: [{ name: 'a', ranges: [[0, 2]], lr: 0.1, weightDecay: 0 }] });
  t.true(Object.is(state.momentum[0], -0));
  t.true(Object.is(state.momentum[1], -0));
});

test('sgdStep refuses overlapping groups, unsorted or outside ranges and non-finite rates, before changing anything', (t) => {
  const weights = floats(20, 3);
  const opt = Optimizer.create({ weights, shards: 1 });
  opt.averageShards([floats(22, 4)], 2);
  const bad: ParameterGroup[][] = [
    [{ name: 'a', ranges: [[0, 10]], lr: 0.1, weightDecay: 0 }, { name: 'b', ranges: [[5, 12]], lr: 0.1, weightDecay: 0 }],
    [{ name: 'a', ranges: [[10, 12], [0, 5]], lr: 0.1, weightDecay: 0 }],
    [{ name: 'a', ranges: [[0, 21]], lr: 0.1, weightDecay: 0 }],
    [{ name: 'a', ranges: [[0, 2]], lr: Number.NaN, weightDecay: 0 }],
  ];
  const messages = [/'a' and 'b' overlap at entry 5/, /not sorted/, /outside the 20 parameters/, /must be finite/];
  bad.forEach((g, k) => t.throws(() => opt.sgdStep({ momentum: 0.9, nesterov: true, groups: g }), { instanceOf: RangeError, message: messages[k] }));
  t.deepEqual(bytes(opt.weights), bytes(weights));
  t.is(opt.sgd.step, 0);
});

test('SGD state copied out (a checkpoint) continues identically in a new Optimizer', (t) => {
  const n = 301;
  const weights = floats(n, 5);
  const results = [0, 1, 2, 3].map((k) => floats(n + 2, 70 + k, 32));
  const options = (k: number): SgdOptions => ({ momentum: 0.85, nesterov: true, groups: k < 2 ? groups(0.001, n).slice(1) : groups(0.001, n) });
  const whole = Optimizer.create({ weights, shards: 1 });
  results.forEach((r, k) => {
    whole.averageShards([r], 1, 'sum');
    whole.sgdStep(options(k));
  });
  const first = Optimizer.create({ weights, shards: 1 });
  results.slice(0, 2).forEach((r, k) => {
    first.averageShards([r], 1, 'sum');
    first.sgdStep(options(k));
  });
  const saved = { momentum: first.sgd.momentum.slice(), started: first.sgd.started.map(([a, b]) => [a, b] as const), step: first.sgd.step };
  const resumed = Optimizer.create({ weights: first.weights.slice(), shards: 1, sgd: saved });
  results.slice(2).forEach((r, k) => {
    resumed.averageShards([r], 1, 'sum');
    resumed.sgdStep(options(k + 2));
  });
  t.true(bytes(resumed.weights).equals(bytes(whole.weights)));
  t.true(bytes(resumed.sgd.momentum).equals(bytes(whole.sgd.momentum)));
  t.is(resumed.sgd.step, 4);
  t.throws(() => Optimizer.create({ weights, shards: 1, sgd: { ...saved, momentum: new Float32Array(3) } }), { instanceOf: RangeError });
});

test('reduction \'sum\': the gradient is the ordered sum, except batch norm\'s statistics, which get the same bits as \'mean\'', (t) => {
  const n = 97;
  const results = [floats(n + 2, 8, 16), floats(n + 2, 9, 16), floats(n + 2, 10, 16)];
  const statistics: ParameterRange[] = [[10, 14], [60, 61]];
  const mean = Optimizer.create({ weights: new Float32Array(n), shards: 3 });
  mean.averageShards(results, 48);
  const sum = Optimizer.create({ weights: new Float32Array(n), shards: 3 });
  sum.averageShards(results, 48, 'sum', statistics);
  const f = Math.fround;
  for (let i = 0; i < n; i++) {
    const total = f(f(f(0 + results[0][i]) + results[1][i]) + results[2][i]);
    const inStatistics = statistics.some(([a, b]) => i >= a && i < b);
    t.is(sum.gradient[i], inStatistics ? mean.gradient[i] : total, `entry ${i}`);
  }
  t.throws(() => sum.averageShards(results, 48, 'sum', [[60, 61], [10, 14]]), { instanceOf: RangeError });
});

test('ulps helper counts float32 steps across zero', (t) => {
  t.is(ulps(1, Math.fround(1 + 2 ** -23)), 1);
  t.is(ulps(0, -0), 0);
  t.is(ulps(1e-45, -1e-45), 2);
});
