import test from 'ava';
import { validateShardResult, validateShardShape } from '../src/pool/shard-result.ts';
import { ShardResultError } from '../src/errors/index.ts';

const P = 81_302;

function result(): Float32Array {
  const r = new Float32Array(P + 2);
  for (let i = 0; i < P; i++) r[i] = Math.sin(i) * 1e-3;
  r[P] = 40.5;
  r[P + 1] = 7;
  return r;
}

test('validateShardResult passes a finite result through unchanged', (t) => {
  const r = result();
  t.is(validateShardResult(r, P, 16, 'w'), r);
});

test('validateShardResult rejects NaN and ±Infinity anywhere, naming the worker, value and first position', (t) => {
  for (const at of [0, 1, 63, 64, 40_000, P - 1, P, P + 1]) {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const r = result();
      r[at] = bad;
      if (at < P - 1) r[P - 1] = Number.NaN;
      t.throws(() => validateShardResult(r, P, 16, 'worker "w1"'), {
        instanceOf: ShardResultError,
        message: `Shard result from worker "w1" holds ${bad} at position ${at}; discarded.`,
      });
    }
  }
});

test('validateShardResult rejects the wrong type, length or correct count', (t) => {
  t.throws(() => validateShardResult([1, 2], P, 16, 'w'), { instanceOf: ShardResultError, message: /not a Float32Array \(got Array\)/ });
  t.throws(() => validateShardResult(new Float32Array(P), P, 16, 'w'), { instanceOf: ShardResultError, message: /has 81302 values, expected 81304/ });
  const r = result();
  r[P + 1] = 17;
  t.throws(() => validateShardResult(r, P, 16, 'w'), { instanceOf: ShardResultError, message: /claims 17 correct out of 16/ });
});

test('validateShardShape checks length and correct count but leaves the values to the Optimizer\'s sum', (t) => {
  const r = result();
  r[123] = NaN;
  t.is(validateShardShape(r, P, 16, 'w'), r);
  t.throws(() => validateShardShape(r.subarray(1), P, 16, 'w'), { instanceOf: ShardResultError, message: /has 81303 values, expected 81304/ });
  r[P + 1] = 17;
  t.throws(() => validateShardShape(r, P, 16, 'w'), { instanceOf: ShardResultError, message: /claims 17 correct out of 16/ });
  t.throws(() => validateShardShape([1, 2], P, 16, 'w'), { instanceOf: ShardResultError, message: /not a Float32Array \(got Array\)/ });
});
