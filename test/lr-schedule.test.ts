import test from 'ava';
import { airbenchLrFactor, learningRate } from '../src/train/lr-schedule.ts';
import { adamStep, newAdamState } from '../src/train/adam.ts';

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-12 + 1e-9 * Math.abs(b);

test('constant is the tutorial: lr at every step; a warm-up ramps linearly up to it', (t) => {
  for (const step of [0, 1, 99]) t.is(learningRate(step, { schedule: 'constant', lr: 1e-3, warmupSteps: 0, totalSteps: 100 }), 1e-3);
  const o = { schedule: 'constant' as const, lr: 1e-3, warmupSteps: 10, totalSteps: 100 };
  t.true(close(learningRate(0, o), 1e-4));
  t.true(close(learningRate(4, o), 5e-4));
  t.is(learningRate(10, o), 1e-3);
});

test('cosine falls from lr to 0 over the steps after the warm-up', (t) => {
  const o = { schedule: 'cosine' as const, lr: 0.01, warmupSteps: 0, totalSteps: 101 };
  t.is(learningRate(0, o), 0.01);
  t.true(close(learningRate(50, o), 0.005));
  t.true(close(learningRate(100, o), 0));
});

test('onecycle follows torch.optim.lr_scheduler.OneCycleLR(max_lr=0.01, total_steps=100)', (t) => {
  // Values printed by Debian's python3-torch 1.13 for those steps.
  const torch: [number, number][] = [[0, 0.0004], [15, 0.005459866761210004], [29, 0.01], [30, 0.009994965352845242], [60, 0.005892800902855287], [99, 4e-8]];
  for (const [step, lr] of torch) {
    const ours = learningRate(step, { schedule: 'onecycle', lr: 0.01, warmupSteps: 0, totalSteps: 100 });
    t.true(close(ours, lr), `step ${step}: ${ours} vs ${lr}`);
  }
});

test('weight decay is decoupled, as torch.optim.AdamW(lr=0.1, weight_decay=0.5)', (t) => {
  const params = new Float32Array([1, -2]);
  const state = newAdamState(2);
  const torch = [[0.8500000238418579, -2.0], [0.7808663249015808, -1.9670058488845825]];
  [[0.5, 3], [-0.25, 0]].forEach((g, k) => {
    adamStep(params, new Float32Array(g), state, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5 });
    for (let i = 0; i < 2; i++) t.true(Math.abs(params[i] - torch[k][i]) < 5e-7, `step ${k + 1}: ${params[i]} vs ${torch[k][i]}`);
  });
});

test('airbench follows airbench94\'s get_lr through torch.optim.lr_scheduler.LambdaLR, to the last bit (476 steps, peak at int(476·0.23) = 109)', (t) => {
  // param_groups[0]['lr'] before each optimizer.step(), printed by Debian's python3-torch 1.13 for
  // LambdaLR(SGD(lr=11.5/(1024·(1+1/0.15))), get_lr) with airbench94's get_lr.
  const torch: [number, number][] = [
    [0, 0.00029296875000000004], [1, 0.00030371989678899087], [54, 0.0008735306766055046], [108, 0.001454092603211009],
    [109, 0.00146484375], [110, 0.001461131748126703], [300, 0.0007558513922002725], [474, 0.00010996306624659399],
    [475, 0.00010625106437329707],
  ];
  const lr = 11.5 / (1024 * (1 + 1 / 0.15));
  for (const [step, expected] of torch) {
    t.is(learningRate(step, { schedule: 'airbench', lr, warmupSteps: 0, totalSteps: 476 }), expected, `step ${step}`);
  }
  t.is(airbenchLrFactor(0, 476), 0.2);
  t.is(airbenchLrFactor(109, 476), 1);
  t.is(airbenchLrFactor(476, 476), 0.07);
  t.true(close(learningRate(10, { schedule: 'airbench', lr: 1, warmupSteps: 20, totalSteps: 100 }), 0.6), 'a given warm-up moves the peak');
});
