// The benchmark's bare-compute scaling (bench/compute-scaling.ts): real worker threads, each with a real
// ShardComputer on shared images, run alone/together phases; and how the figure reaches the summary and report.
import test from 'ava';
import { randomImageSet } from './fixtures/random-image-set.ts';
import { modelByName } from '../src/model/model-registry.ts';
import { initialParameters } from '../src/model/parameter-vector.ts';
import { BenchError } from '../bench/bench-error.ts';
import { ComputeScaling, type ComputeScalingSample } from '../bench/compute-scaling.ts';
import type { BenchSamples, TrainingSample } from '../bench/bench-results.ts';
import { summarize } from '../bench/bench-summary.ts';
import { formatReport } from '../bench/format-report.ts';

const train = randomImageSet(64, 1);
const weights = initialParameters(modelByName('tutorial'), 1);

test.serial('pairs of alone and together phases give one ratio each, in the order asked', async (t) => {
  const scaling = await ComputeScaling.start({ train, model: 'tutorial', weights, backend: 'fused', threads: 2 });
  t.teardown(() => scaling.close());
  const samples = await scaling.measure(8, 3, 3, 150);
  t.is(samples.length, 3);
  for (const s of samples) {
    t.is(s.batch, 8);
    t.is(s.round, 3);
    t.true(s.aloneMs > 0 && Number.isFinite(s.aloneMs), `alone ${s.aloneMs}`);
    t.true(s.togetherMs > 0 && Number.isFinite(s.togetherMs), `together ${s.togetherMs}`);
    t.is(s.ratio, s.aloneMs / s.togetherMs);
  }
  // A batch the threads cannot share is refused before anything runs.
  const tooSmall = await t.throwsAsync(scaling.measure(1, 0, 1, 100), { instanceOf: BenchError });
  t.regex(tooSmall.message, /at least 2 images, got 1/);
});

test.serial('once closed, a measurement fails with a BenchError instead of waiting for threads that are gone', async (t) => {
  const scaling = await ComputeScaling.start({ train, model: 'tutorial', weights, backend: 'fused', threads: 2 });
  await scaling.close();
  const error = await t.throwsAsync(scaling.measure(8, 0, 1, 100), { instanceOf: BenchError });
  t.regex(error.message, /compute-scaling thread stopped/);
});

test.serial('a thread that cannot start, or too few threads, is a BenchError naming why', async (t) => {
  const error = await t.throwsAsync(ComputeScaling.start({ train, model: 'no-such-model', weights, backend: 'fused', threads: 2 }), { instanceOf: BenchError });
  t.regex(error.message, /compute-scaling thread failed: .*no-such-model/);
  await t.throwsAsync(ComputeScaling.start({ train, model: 'tutorial', weights, backend: 'fused', threads: 1 }), {
    instanceOf: BenchError, message: /at least 2 threads, got 1/,
  });
});

test('the summary takes the median of every pair at a batch size, and the report shows it beside the trainer\'s scaling', (t) => {
  const point = (config: 'tfjs-1' | 'tfjs-n', batch: number, round: number, imagesPerSecond: number): TrainingSample => ({
    config, batch, round, steps: 10, imagesPerSecond, msPerStep: (batch * 1000) / imagesPerSecond, breakdown: null,
  });
  const pair = (batch: number, round: number, ratio: number): ComputeScalingSample => ({ batch, round, aloneMs: ratio, togetherMs: 1, ratio });
  const samples: BenchSamples = {
    configs: [
      { id: 'tfjs-1', label: 'tfjs 1 thread', description: '' },
      { id: 'tfjs-n', label: 'tfjs 2 threads', description: '' },
    ],
    training: [point('tfjs-1', 32, 0, 1000), point('tfjs-n', 32, 0, 1700), point('tfjs-1', 128, 0, 1000), point('tfjs-n', 128, 0, 1500)],
    evaluation: [], memory: [], notes: [],
    bareCompute: [pair(32, 0, 1.9), pair(32, 0, 1.5), pair(32, 1, 1.8), pair(128, 0, 1.6)],
  };
  const summary = summarize(samples, [32, 128], 1);
  t.deepEqual(summary.training.map((row) => row.bareCompute), [1.8, 1.6]);
  const scaling = summary.targets.filter((target) => target.name.startsWith('scaling'));
  t.deepEqual(scaling.map((target) => target.bareCompute), [1.8, 1.6]);
  t.true(summary.targets.filter((target) => !target.name.startsWith('scaling')).every((target) => target.bareCompute === undefined));

  const machine = { cpu: 'test CPU', cores: 2, node: 'v20', tfjs: '4', backend: 'fused', pytorch: null, loadAverageAtStart: 0, loadAverageAtEnd: 0 };
  const run = { data: 'data', rounds: 1, images: 100, warmup: 1, workers: 2, seconds: 1, start: 'fresh weights (seed 1)' };
  const report = formatReport(summary, samples.configs, machine, run, []);
  t.regex(report, /\| +32 \| +1,000 \| +1,700 \| +1\.70× \| +1\.80× \|/);
  t.regex(report, /\| scaling, N workers \/ 1 worker, batch 128 +\| +1\.50× \| ≥ 1\.85× +\| NO +\| +1\.60× \|/);
});
