import test from 'ava';
import { Lookahead, lookaheadDecay } from '../src/train/lookahead.ts';
import { f32FromBase64, lcgFloats, TORCH_REFERENCE, ulps } from './fixtures/recipe-reference-inputs.ts';

const ref = TORCH_REFERENCE.lookahead;
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

test('lookaheadDecay is airbench\'s alpha_schedule to the last bit', (t) => {
  ref.alphaSchedule.forEach((alpha, step) => t.is(lookaheadDecay(step, ref.total), alpha, `step ${step} of ${ref.total}`));
  for (const [step, alpha] of Object.entries(ref.airbenchAlpha.values)) {
    t.is(lookaheadDecay(Number(step), ref.airbenchAlpha.total), alpha, `step ${step} of airbench94's ${ref.airbenchAlpha.total}`);
  }
});

/** The fixture's run: w ← w + delta each step (the "optimizer"), then the lookahead, as airbench's loop. */
function run() {
  const weights = lcgFloats(ref.n, ref.weightsSeed, ref.weightsScale);
  const lookahead = Lookahead.start(weights);
  const trace: { step: number; action: string; weights: Float32Array }[] = [];
  for (let k = 0; k < ref.total; k++) {
    const delta = lcgFloats(ref.n, ref.deltaSeeds[k], ref.deltaScale);
    for (let i = 0; i < ref.n; i++) weights[i] += delta[i];
    const action = lookahead.afterStep(weights, k + 1, ref.total);
    if (action !== 'none') trace.push({ step: k + 1, action, weights: weights.slice() });
  }
  return { weights, lookahead, trace };
}

test('Lookahead follows airbench\'s LookaheadState: bit for bit torch\'s lerp as separate ops, within 2 ulps its fused Tensor.lerp_', (t) => {
  const { weights, lookahead, trace } = run();
  t.deepEqual(trace.map((r) => [r.step, r.action]), [[5, 'update'], [10, 'update'], [12, 'final']]);
  ref.unfused.trace.forEach((r, k) => t.true(bytes(trace[k].weights).equals(bytes(f32FromBase64(r.weights))), `after step ${r.step}`));
  t.true(bytes(weights).equals(bytes(f32FromBase64(ref.unfused.final))), 'final weights');
  t.true(bytes(lookahead.ema).equals(bytes(f32FromBase64(ref.unfused.ema))), 'final average');
  t.true(bytes(weights).equals(bytes(trace[1].weights)), 'the last two steps are dropped: the weights are the average of step 10');
  const torch = f32FromBase64(ref.torch.final);
  let worst = 0;
  let exact = 0;
  for (let i = 0; i < ref.n; i++) {
    worst = Math.max(worst, ulps(weights[i], torch[i]));
    if (weights[i] === torch[i]) exact++;
  }
  t.log(`against torch's fused lerp_: ${exact}/${ref.n} bit-identical, at most ${worst} ulps apart`);
  t.true(worst <= 2);
});

test('the average checkpointed after any step continues to the same bits', (t) => {
  const whole = run();
  for (const stop of [3, 5, 7, 10, 11]) {
    const weights = lcgFloats(ref.n, ref.weightsSeed, ref.weightsScale);
    let lookahead = Lookahead.start(weights);
    for (let k = 0; k < ref.total; k++) {
      const delta = lcgFloats(ref.n, ref.deltaSeeds[k], ref.deltaScale);
      for (let i = 0; i < ref.n; i++) weights[i] += delta[i];
      lookahead.afterStep(weights, k + 1, ref.total);
      if (k + 1 === stop) lookahead = Lookahead.resume(lookahead.ema.slice(), ref.n);
    }
    t.true(bytes(weights).equals(bytes(whole.weights)), `stopped after step ${stop}`);
  }
  t.throws(() => Lookahead.resume(new Float32Array(3), ref.n), { instanceOf: RangeError });
  t.throws(() => whole.lookahead.afterStep(whole.weights, 13, 12), { instanceOf: RangeError, message: /outside the run's steps 1-12/ });
});

test('update: weight 1 − decay, both branches of torch\'s lerp; a frozen entry (weights = ema) stays exactly; decay 1 resets the weights to the average', (t) => {
  const f = Math.fround;
  const lookahead = Lookahead.start(Float32Array.of(1, 2, 3));
  const w = Float32Array.of(2, 2, -1);
  lookahead.update(w, 0.25); // weight 0.75 ≥ 0.5: w − (w − ema)·0.25
  t.deepEqual([...w], [1.75, 2, 0]);
  t.deepEqual([...lookahead.ema], [1.75, 2, 0]);
  const w2 = Float32Array.of(0.75, 2, 1);
  lookahead.update(w2, 0.7); // weight f32(0.3) < 0.5: ema + 0.3·(w − ema)
  const weight = f(1 - 0.7);
  t.deepEqual([...w2], [f(1.75 + f(weight * -1)), 2, f(0 + weight)]);
  w2.set([9, 9, 9]);
  lookahead.update(w2, 1);
  t.deepEqual([...w2], [...lookahead.ema], 'decay 1: weights ← ema');
  t.is(w2[1], 2);
});
