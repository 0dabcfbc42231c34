import test from 'ava';
import { tutorialCnn } from '../src/model/tutorial-cnn.ts';
import { initialParameters, parameterCount, parameterSlices } from '../src/model/parameter-vector.ts';
import { formatSummary } from '../src/model/model-summary.ts';

test('the tutorial network has 81,302 parameters, and its summary rows add up to them', (t) => {
  t.is(parameterCount(tutorialCnn), 81_302);
  t.is(tutorialCnn.summary().reduce((n, r) => n + r.parameters, 0), 81_302);
  t.regex(formatSummary(tutorialCnn), /Total params: 81,302/);
});

test('initial weights are uniform within ±1/√fan_in per tensor, like PyTorch, and fill the range', (t) => {
  const w = initialParameters(tutorialCnn, 7);
  for (const { spec, offset, size } of parameterSlices(tutorialCnn)) {
    const bound = 1 / Math.sqrt(spec.fanIn);
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    for (let i = offset; i < offset + size; i++) {
      min = Math.min(min, w[i]);
      max = Math.max(max, w[i]);
      sum += w[i];
    }
    t.true(min >= -bound && max <= bound, `${spec.name} within ±${bound}`);
    if (size >= 100) {
      t.true(max > bound * 0.9 && min < -bound * 0.9, `${spec.name} spans its range`);
      t.true(Math.abs(sum / size) < bound * 0.2, `${spec.name} centred`);
    }
  }
});

test('initial weights depend on the seed only', (t) => {
  t.deepEqual(initialParameters(tutorialCnn, 3), initialParameters(tutorialCnn, 3));
  t.notDeepEqual(initialParameters(tutorialCnn, 3), initialParameters(tutorialCnn, 4));
});
