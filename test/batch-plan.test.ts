import test from 'ava';
import { batchIndices, cutIntoShards, epochOfStep, epochPermutation, stepsPerEpoch, totalTrainingSteps } from '../src/train/batch-plan.ts';

test('every image appears exactly once per epoch, across all batches and shards', (t) => {
  const count = 1003;
  for (const [batchSize, shards] of [[10, 2], [128, 3], [7, 8], [1003, 1]]) {
    const perm = epochPermutation(42, 3, count);
    const seen = new Uint8Array(count);
    for (let step = 0; step < stepsPerEpoch(count, batchSize); step++) {
      const batch = batchIndices(perm, step, batchSize);
      t.true(batch.length <= batchSize);
      const parts = cutIntoShards(batch, shards);
      t.is(parts.reduce((n, p) => n + p.length, 0), batch.length);
      for (const part of parts) for (const i of part) seen[i] += 1;
    }
    t.true(seen.every((n) => n === 1), `batch ${batchSize}, shards ${shards}`);
  }
});

test('the shuffle is seeded: same seed and epoch give the same order, other epochs or seeds another', (t) => {
  const a = epochPermutation(1, 1, 500);
  t.deepEqual(epochPermutation(1, 1, 500), a);
  t.notDeepEqual(epochPermutation(1, 2, 500), a);
  t.notDeepEqual(epochPermutation(2, 1, 500), a);
  t.notDeepEqual([...a], [...Array(500).keys()]);
});

test('shards differ in size by at most one, larger first, and never empty', (t) => {
  const batch = Int32Array.from({ length: 10 }, (_, i) => i);
  t.deepEqual(cutIntoShards(batch, 3).map((s) => s.length), [4, 3, 3]);
  t.deepEqual(cutIntoShards(batch, 2).map((s) => [...s]), [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]);
  t.deepEqual(cutIntoShards(batch.subarray(0, 2), 4).map((s) => s.length), [1, 1]);
});

test('the last batch of an epoch keeps the remainder', (t) => {
  const perm = epochPermutation(1, 1, 25);
  t.is(stepsPerEpoch(25, 10), 3);
  t.is(batchIndices(perm, 2, 10).length, 5);
});

test('drop-last batching, fractional epochs and the epoch of a step, as airbench counts them', (t) => {
  t.is(stepsPerEpoch(50_000, 1024), 49);
  t.is(stepsPerEpoch(50_000, 1024, true), 48);
  t.is(stepsPerEpoch(2048, 1024, true), 2);
  t.is(totalTrainingSteps(48, 9.9), 476, 'ceil(48 × 9.9), airbench94\'s total_train_steps');
  t.is(totalTrainingSteps(48, 10), 480);
  t.is(epochOfStep(0, 48), 1);
  t.is(epochOfStep(47, 48), 1);
  t.is(epochOfStep(48, 48), 2);
  t.is(epochOfStep(475, 48), 10);
  const permutation = Int32Array.from({ length: 2500 }, (_, i) => i);
  const steps = stepsPerEpoch(permutation.length, 1024, true);
  t.deepEqual(Array.from({ length: steps }, (_, s) => batchIndices(permutation, s, 1024).length), [1024, 1024], 'only full batches');
});
