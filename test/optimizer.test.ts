import test from 'ava';
import { assertCommittedWasmIsFresh } from './helpers/committed-wasm.ts';
import { type AdamOptions, adamStep, newAdamState } from '../src/train/adam.ts';
import { OPTIMIZER_WASM_URL, Optimizer, type ParameterRange } from '../src/train/optimizer/optimizer.ts';
import { firstNonFinite } from '../src/train/optimizer/finite-scan.ts';
import { ShardResultError } from '../src/errors/index.ts';


/** Deterministic pseudo-random floats over many magnitudes, with some ±0 and subnormals mixed in. */
function floats(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = next();
    out[i] = r < 0.02 ? 0 : r < 0.04 ? -0 : r < 0.05 ? (next() - 0.5) * 1e-39 : (next() - 0.5) * scale * 10 ** (next() * 6 - 5);
  }
  return out;
}

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** The JS path: sum in shard order into float32, divide by the batch, adamStep on [start, end) of each range. */
function reference(weights: Float32Array, shards: Float32Array[][], batch: number, options: AdamOptions[], ranges?: ParameterRange[]) {
  const w = weights.slice();
  const state = newAdamState(w.length);
  const g = new Float32Array(w.length);
  shards.forEach((results, k) => {
    g.fill(0);
    for (const r of results) for (let i = 0; i < g.length; i++) g[i] += r[i];
    for (let i = 0; i < g.length; i++) g[i] /= batch;
    const rs = ranges ?? [[0, w.length]];
    rs.forEach(([a, b], j) => {
      if (j > 0) state.step -= 1; // one step over several ranges
      adamStep(w, g, state, options[k], a, b);
    });
  });
  return { w, state };
}

function wasm(weights: Float32Array, shards: Float32Array[][], batch: number, options: AdamOptions[], skip?: ParameterRange[]) {
  const opt = Optimizer.create({ weights, shards: Math.max(...shards.map((s) => s.length)) });
  shards.forEach((results, k) => {
    opt.averageShards(results, batch);
    opt.adamStep(options[k], skip);
  });
  return opt;
}

const ADAM: AdamOptions = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 };

for (const [n, shardCount, decay] of [[81_302, 2, 0], [1_027, 3, 0.05], [5, 1, 0], [3, 2, 0.5]] as const) {
  test(`wasm sum + average + Adam equals the JS reference bit for bit (${n} parameters, ${shardCount} shards, weight decay ${decay})`, (t) => {
    const weights = floats(n, 1);
    const steps = 4;
    const shards = Array.from({ length: steps }, (_, k) => Array.from({ length: shardCount }, (_, s) => {
      const r = floats(n + 2, 100 + k * 10 + s, 16);
      r[n] = 12.5; // loss sum and correct count: ignored by the sum
      r[n + 1] = 3;
      return r;
    }));
    const options = Array.from({ length: steps }, (_, k) => ({ ...ADAM, lr: 1e-3 * (1 + k), weightDecay: decay }));
    const ref = reference(weights, shards, 32, options);
    const opt = wasm(weights, shards, 32, options);
    t.is(opt.state.step, steps);
    t.true(bytes(opt.weights).equals(bytes(ref.w)), 'weights');
    t.true(bytes(opt.state.m).equals(bytes(ref.state.m)), 'm');
    t.true(bytes(opt.state.v).equals(bytes(ref.state.v)), 'v');
    let changed = 0;
    for (let i = 0; i < n; i++) if (opt.weights[i] !== weights[i]) changed++;
    t.true(changed > n / 2, 'the steps move the weights');
  });
}

test('same inputs give byte-identical weights twice and in two module instances; resuming from copied state continues identically', (t) => {
  const n = 10_001;
  const weights = floats(n, 5);
  const shards = [0, 1, 2].map((k) => [floats(n, 20 + k, 8), floats(n, 30 + k, 8)]);
  const options = [ADAM, ADAM, { ...ADAM, weightDecay: 0.01 }];
  const a = wasm(weights, shards, 10, options);
  const b = wasm(weights, shards, 10, options);
  t.true(bytes(a.weights).equals(bytes(b.weights)));
  t.true(bytes(a.state.v).equals(bytes(b.state.v)));
  // Two steps, copy out (as a checkpoint does), one more step in a new instance = three steps in one.
  const first = wasm(weights, shards.slice(0, 2), 10, options);
  const resumed = Optimizer.create({
    weights: first.weights.slice(), shards: 2,
    adam: { m: first.state.m.slice(), v: first.state.v.slice(), step: first.state.step },
  });
  resumed.averageShards(shards[2], 10);
  resumed.adamStep(options[2]);
  t.true(bytes(resumed.weights).equals(bytes(a.weights)));
  t.is(resumed.state.step, 3);
});

test('moments that fall below float32\'s normal range become 0, in the kernel and the reference alike, and move no weight of a trained size', (t) => {
  const SMALLEST_NORMAL = 2 ** -126;
  // Gradients that stop: the moments of the first weights decay (m by 0.9 a step) into the subnormals.
  const n = 1_003;
  // Weights of a trained network's sizes (a weight itself below ~1e-23 would feel even a subnormal moment's pull).
  const weights = floats(n, 7).map((w) => (Math.abs(w) < 1e-6 ? 0.25 : w));
  const gradient = (k: number) => {
    const g = new Float32Array(n + 2);
    for (let i = 0; i < n; i++) g[i] = k === 0 ? 1e-36 * (1 + i / 1000) : i < 500 ? 0 : 1e-3;
    return g;
  };
  const steps = Array.from({ length: 60 }, (_, k) => [gradient(k)]);
  const options = steps.map(() => ADAM);
  const ref = reference(weights, steps, 1, options);
  const opt = wasm(weights, steps, 1, options);
  t.deepEqual(bytes(opt.weights), bytes(ref.w));
  t.deepEqual(bytes(opt.state.m), bytes(ref.state.m));
  t.deepEqual(bytes(opt.state.v), bytes(ref.state.v));
  const subnormal = (x: number) => x !== 0 && Math.abs(x) < SMALLEST_NORMAL;
  t.false([...opt.state.m, ...opt.state.v].some(subnormal), 'no subnormal moment is kept');
  t.true(opt.state.m.subarray(0, 500).every((m) => m === 0), 'the stopped weights\' first moments reached 0');
  t.true(opt.state.m.subarray(500).every((m) => m > 0));
  // Without the rule the same steps leave the weights as they are (the moments' pull is far below an ulp).
  const w = weights.slice();
  const state = newAdamState(n);
  for (const [g] of steps) {
    state.step += 1;
    const c = { b1: Math.fround(0.9), ob1: Math.fround(0.1), b2: Math.fround(0.999), ob2: Math.fround(0.001) };
    const f = Math.fround;
    for (let i = 0; i < n; i++) {
      const mi = f(f(c.b1 * state.m[i]) + f(c.ob1 * g[i]));
      const vi = f(f(c.b2 * state.v[i]) + f(f(c.ob2 * g[i]) * g[i]));
      const denom = f(f(f(Math.sqrt(vi)) / f(Math.sqrt(1 - 0.999 ** state.step))) + f(1e-8));
      state.m[i] = mi;
      state.v[i] = vi;
      w[i] = w[i] - f(f(1e-3 / (1 - 0.9 ** state.step)) * f(mi / denom));
    }
  }
  t.true([...state.m].some(subnormal), 'plain IEEE arithmetic does keep subnormal moments here');
  t.deepEqual(bytes(opt.weights), bytes(w), 'and ends with the very same weights');
});

test('adamStep skips the ranges it is given (e.g. batch-norm running statistics): weights and moments stay', (t) => {
  const n = 103;
  const weights = floats(n, 9);
  const shards = [[floats(n, 40, 4), floats(n, 41, 4)], [floats(n, 42, 4), floats(n, 43, 4)]];
  const skip: ParameterRange[] = [[37, 41], [42, 50]];
  const opt = wasm(weights, shards, 8, [ADAM, ADAM], skip);
  const ref = reference(weights, shards, 8, [ADAM, ADAM], [[0, 37], [41, 42], [50, 103]]);
  t.true(bytes(opt.weights).equals(bytes(ref.w)));
  t.is(opt.state.step, 2);
  for (const i of [37, 38, 39, 40, 42, 49]) {
    t.is(opt.weights[i], weights[i]);
    t.is(opt.state.m[i], 0);
  }
  t.not(opt.weights[36], weights[36]);
  t.throws(() => opt.adamStep(ADAM, [[0, n + 1]]), { instanceOf: RangeError });
  t.throws(() => opt.adamStep(ADAM, [[10, 20], [5, 8]]), { instanceOf: RangeError, message: /not sorted/ });
  t.is(opt.state.step, 2, 'a refused step does not count');
});

test('averageShards rejects NaN and ±Infinity naming the shard and position, and an overflowing sum', (t) => {
  const n = 301;
  const opt = Optimizer.create({ weights: floats(n, 3), shards: 2 });
  for (const [bad, at] of [[Number.NaN, 0], [Number.POSITIVE_INFINITY, 150], [Number.NEGATIVE_INFINITY, 300]] as const) {
    const r1 = floats(n + 2, 7);
    r1[at] = bad;
    t.throws(() => opt.averageShards([floats(n + 2, 6), r1], 4), { instanceOf: ShardResultError, message: `Shard result 1 holds ${bad} at position ${at}; discarded.` });
  }
  const big = new Float32Array(n).fill(3e38);
  t.throws(() => opt.averageShards([big, big], 4), { instanceOf: ShardResultError, message: /overflows float32 at position 0/ });
  t.throws(() => opt.averageShards([big, big, big], 4), { instanceOf: RangeError });
  t.throws(() => opt.averageShards([new Float32Array(n - 1)], 4), { instanceOf: ShardResultError });
});

test('firstNonFinite finds the first NaN/±Infinity anywhere, and nothing in finite extremes', (t) => {
  const finite = Float32Array.of(0, -0, 1e-45, -1e-45, 3.4028234663852886e38, -3.4028234663852886e38, 1.1754943508222875e-38);
  t.is(firstNonFinite(finite), -1);
  t.is(firstNonFinite(new Float32Array(0)), -1);
  for (const n of [1, 3, 4, 63, 64, 65, 200, 81_304]) {
    const values = floats(n, n, 100);
    t.is(firstNonFinite(values), -1, `${n} finite`);
    for (const at of new Set([0, n >> 1, n - 1, Math.max(0, n - 65)])) {
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        const v = values.slice();
        v[at] = bad;
        if (at + 1 < n) v[n - 1] = Number.NaN; // a later one does not hide the first
        t.is(firstNonFinite(v), at, `${bad} at ${at} of ${n}`);
      }
    }
  }
});

test('the committed optimizer.wasm is what npm run build:wasm:optimizer builds from the source', (t) =>
  assertCommittedWasmIsFresh(t, 'build:wasm:optimizer', OPTIMIZER_WASM_URL));

test('results written straight into the resultSlots are summed where they are, with the same bytes as copied ones; a slot at another shard\'s place is refused', (t) => {
  const n = 1_027;
  const weights = floats(n, 3);
  const results = [0, 1, 2].map((s) => floats(n + 2, 200 + s, 16));
  const copied = Optimizer.create({ weights, shards: 3 });
  copied.averageShards(results, 30);
  copied.adamStep(ADAM);

  const inPlace = Optimizer.create({ weights, shards: 3 });
  t.deepEqual(inPlace.resultSlots.map((slot) => slot.length), [n + 2, n + 2, n + 2]);
  results.forEach((r, k) => inPlace.resultSlots[k].set(r));
  inPlace.averageShards(inPlace.resultSlots, 30);
  inPlace.adamStep(ADAM);
  t.deepEqual(bytes(inPlace.gradient), bytes(copied.gradient));
  t.deepEqual(bytes(inPlace.weights), bytes(copied.weights));
  t.deepEqual(bytes(inPlace.resultSlots[2]), bytes(results[2]), 'a slot keeps its whole result, loss sum and correct count too');

  // A mix works (a pool may fill some slots and hand back arrays of its own for others).
  const mixed = Optimizer.create({ weights, shards: 3 });
  mixed.resultSlots[1].set(results[1]);
  mixed.averageShards([results[0], mixed.resultSlots[1], results[2]], 30);
  t.deepEqual(bytes(mixed.gradient), bytes(copied.gradient));

  const swapped = [inPlace.resultSlots[1], inPlace.resultSlots[0]];
  t.throws(() => inPlace.averageShards(swapped, 30), { instanceOf: RangeError, message: /Shard result 0 is the Optimizer's slot of another shard/ });
});
