/**
 * Medians, ratios and issue #4's targets from the raw samples. A ratio is the median over rounds of the ratio
 * measured within each round (both sides ran minutes apart at most, interleaved), so a noisy round moves it less
 * than it moves either side's median.
 */
import type { BenchSamples, ConfigId, MemorySample } from './bench-results.ts';
import type { StepBreakdown } from './step-breakdown.ts';

export interface TrainingRow {
  readonly batch: number;
  /** Median images/s per configuration. */
  readonly imagesPerSecond: Partial<Record<ConfigId, number>>;
  /** tfjs N local workers / PyTorch's best of 1 and 2 threads. */
  readonly vsPytorchBest: number | null;
  /** tfjs N local workers / tfjs 1 local worker. */
  readonly scaling: number | null;
  /**
   * The same ratio for bare compute (./compute-scaling.ts): N threads computing the shards of each batch with
   * nothing else to do, waiting for each other after each batch, against one thread computing whole batches; the
   * median of every pair measured at this batch size.
   */
  readonly bareCompute: number | null;
  /** tfjs N remote workers / tfjs N local workers. */
  readonly remoteVsLocal: number | null;
}

/** The step breakdown of the round whose step time is the median (the lower one of two middles). */
export interface BreakdownRow extends StepBreakdown {
  readonly config: ConfigId;
  readonly batch: number;
}

export interface EvaluationSummary {
  /** Median seconds for the test images, per configuration. */
  readonly seconds: Partial<Record<ConfigId, number>>;
  /** PyTorch 1 thread seconds / tfjs N local workers seconds (≥ 1: tfjs is no slower). */
  readonly tfjsVsPytorch1: number | null;
}

export interface Target {
  readonly name: string;
  readonly measured: number | null;
  readonly goal: string;
  /** null: not measured in this run. */
  readonly met: boolean | null;
  /** For the scaling targets: the same ratio for bare compute on this machine, measured in the same run. */
  readonly bareCompute?: number | null;
}

export interface BenchSummary {
  readonly training: TrainingRow[];
  readonly breakdown: BreakdownRow[];
  readonly evaluation: EvaluationSummary;
  readonly memory: MemorySample[];
  readonly targets: Target[];
}

export function median(values: readonly number[]): number | null {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

export function summarize(samples: BenchSamples, batches: readonly number[], rounds: number): BenchSummary {
  const ips = (config: ConfigId, batch: number, round: number) =>
    samples.training.find((s) => s.config === config && s.batch === batch && s.round === round)?.imagesPerSecond;
  const ratio = (batch: number, top: (r: number) => number | undefined, bottom: (r: number) => number | undefined) =>
    median(
      Array.from({ length: rounds }, (_, r) => {
        const a = top(r);
        const b = bottom(r);
        return a !== undefined && b !== undefined && b > 0 ? a / b : NaN;
      }),
    );
  const bestTorch = (batch: number, r: number) => {
    const values = [ips('torch-1', batch, r), ips('torch-2', batch, r)].filter((v): v is number => v !== undefined);
    return values.length > 0 ? Math.max(...values) : undefined;
  };

  const training: TrainingRow[] = batches.map((batch) => {
    const imagesPerSecond: Partial<Record<ConfigId, number>> = {};
    for (const config of samples.configs) {
      const m = median(samples.training.filter((s) => s.config === config.id && s.batch === batch).map((s) => s.imagesPerSecond));
      if (m !== null) imagesPerSecond[config.id] = m;
    }
    return {
      batch, imagesPerSecond,
      vsPytorchBest: ratio(batch, (r) => ips('tfjs-n', batch, r), (r) => bestTorch(batch, r)),
      scaling: ratio(batch, (r) => ips('tfjs-n', batch, r), (r) => ips('tfjs-1', batch, r)),
      bareCompute: median(samples.bareCompute.filter((s) => s.batch === batch).map((s) => s.ratio)),
      remoteVsLocal: ratio(batch, (r) => ips('remote', batch, r), (r) => ips('tfjs-n', batch, r)),
    };
  });

  // The round with the median step time, whole: its columns add up to its step, which medians taken column by
  // column would not.
  const breakdown: BreakdownRow[] = [];
  for (const config of samples.configs) {
    for (const batch of batches) {
      const parts = samples.training
        .filter((s) => s.config === config.id && s.batch === batch && s.breakdown)
        .map((s) => s.breakdown!)
        .sort((a, b) => a.stepMs - b.stepMs);
      if (parts.length === 0) continue;
      breakdown.push({ config: config.id, batch, ...parts[Math.floor((parts.length - 1) / 2)] });
    }
  }

  const evalSeconds = (config: ConfigId, round: number) => samples.evaluation.find((s) => s.config === config && s.round === round)?.seconds;
  const seconds: Partial<Record<ConfigId, number>> = {};
  for (const config of samples.configs) {
    const m = median(samples.evaluation.filter((s) => s.config === config.id).map((s) => s.seconds));
    if (m !== null) seconds[config.id] = m;
  }
  const evaluation: EvaluationSummary = {
    seconds,
    tfjsVsPytorch1: ratio(0, (r) => evalSeconds('torch-1', r), (r) => evalSeconds('tfjs-n', r)),
  };

  return { training, breakdown, evaluation, memory: samples.memory, targets: targets(training, evaluation, samples.memory) };
}

/** Issue #4's targets, on what this run measured. */
function targets(training: readonly TrainingRow[], evaluation: EvaluationSummary, memory: readonly MemorySample[]): Target[] {
  const out: Target[] = [];
  const row = (batch: number) => training.find((t) => t.batch === batch);
  const check = (name: string, measured: number | null | undefined, goal: string, ok: (v: number) => boolean, bareCompute?: number | null) =>
    out.push({ name, measured: measured ?? null, goal, met: measured === null || measured === undefined ? null : ok(measured), bareCompute });

  for (const batch of [10, 128]) {
    check(`training, N local workers / PyTorch best, batch ${batch}`, row(batch)?.vsPytorchBest, '≥ 1.0×', (v) => v >= 1.0);
  }
  for (const t of training.filter((t) => t.batch >= 32)) {
    check(`scaling, N workers / 1 worker, batch ${t.batch}`, t.scaling, '≥ 1.85×', (v) => v >= 1.85, t.bareCompute);
  }
  check('remote / local, N workers, batch 128', row(128)?.remoteVsLocal, '≥ 0.9×', (v) => v >= 0.9);
  check('evaluation, PyTorch 1 thread time / tfjs time', evaluation.tfjsVsPytorch1, '≥ 1.0× (no slower)', (v) => v >= 1.0);
  const mb = (config: ConfigId) => {
    const m = memory.find((s) => s.config === config && s.batch === 128);
    return m ? m.totalKB / 1024 : null;
  };
  check('memory, coordinator + N local threads at batch 128 (MB)', mb('tfjs-n'), '≤ 1024 MB', (v) => v <= 1024);
  check('memory, coordinator + N remote workers at batch 128 (MB)', mb('remote'), '≤ 1024 MB', (v) => v <= 1024);
  return out;
}
