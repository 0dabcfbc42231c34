/** The benchmark's printed report: machine, then one table per measurement, the targets, and the notes. */
import type { ConfigId, ConfigInfo } from './bench-results.ts';
import type { BenchSummary } from './bench-summary.ts';
import { formatCount, formatFixed, markdownTable } from './format-table.ts';

export interface MachineInfo {
  readonly cpu: string;
  readonly cores: number;
  readonly node: string;
  readonly tfjs: string;
  readonly backend: string;
  readonly pytorch: string | null;
  readonly loadAverageAtStart: number;
  readonly loadAverageAtEnd: number;
}

export interface RunInfo {
  readonly data: string;
  readonly rounds: number;
  readonly images: number;
  readonly warmup: number;
  readonly workers: number;
  readonly seconds: number;
  /** Where the tfjs training points start (./starting-point.ts). */
  readonly start: string;
}

export function formatReport(summary: BenchSummary, configs: readonly ConfigInfo[], machine: MachineInfo, run: RunInfo, notes: readonly string[]): string {
  const has = (id: ConfigId) => configs.some((c) => c.id === id);
  const label = (id: ConfigId) => configs.find((c) => c.id === id)?.label ?? id;
  const n = run.workers;
  const out: string[] = [];

  out.push(
    `Machine: ${machine.cpu}, ${machine.cores} cores; Node ${machine.node}, tfjs ${machine.tfjs} (${machine.backend})` +
      (machine.pytorch ? `; ${machine.pytorch}` : '; no PyTorch') +
      `. Load average ${machine.loadAverageAtStart.toFixed(2)} at start, ${machine.loadAverageAtEnd.toFixed(2)} at end.`,
    `Data: ${run.data}. ${run.rounds} round${run.rounds === 1 ? '' : 's'}, interleaved; ≥ ${run.images} images timed per point after ` +
      `${run.warmup} warm-up step${run.warmup === 1 ? '' : 's'}; medians. Took ${Math.round(run.seconds)} s.`,
    `tfjs training starts every point from ${run.start}; PyTorch from fresh weights.`,
    '',
  );

  // Training throughput.
  const trainConfigs = configs.map((c) => c.id);
  const ratioHeads: string[] = [];
  if (has('tfjs-n') && (has('torch-1') || has('torch-2'))) ratioHeads.push(`${label('tfjs-n')} / PyTorch best`);
  if (has('tfjs-n') && has('tfjs-1')) ratioHeads.push(`${label('tfjs-n')} / ${label('tfjs-1')}`);
  const bare = summary.training.some((row) => row.bareCompute !== null);
  if (bare) ratioHeads.push(`bare compute, ${n} thr / 1 thr`);
  if (has('remote') && has('tfjs-n')) ratioHeads.push(`${label('remote')} / ${label('tfjs-n')}`);
  out.push('Training throughput, images/s (forward, cross-entropy, backward, Adam)');
  out.push(
    markdownTable(
      ['batch', ...trainConfigs.map(label), ...ratioHeads],
      summary.training.map((row) => {
        const ratios: string[] = [];
        if (has('tfjs-n') && (has('torch-1') || has('torch-2'))) ratios.push(formatFixed(row.vsPytorchBest, 2, '×'));
        if (has('tfjs-n') && has('tfjs-1')) ratios.push(formatFixed(row.scaling, 2, '×'));
        if (bare) ratios.push(formatFixed(row.bareCompute, 2, '×'));
        if (has('remote') && has('tfjs-n')) ratios.push(formatFixed(row.remoteVsLocal, 2, '×'));
        return [String(row.batch), ...trainConfigs.map((id) => formatCount(row.imagesPerSecond[id])), ...ratios];
      }),
      ['r', ...trainConfigs.map(() => 'r' as const), ...ratioHeads.map(() => 'r' as const)],
    ),
  );
  if (bare) {
    out.push(
      `Bare compute: ${n} threads computing the shards of each batch with nothing else to do (they wait for each other after ` +
        `each batch, as a step does), images/s over 1 thread computing whole batches (bench/compute-scaling.ts; median of ` +
        `alone/together pairs, interleaved with the rounds): how well this machine runs ${n} computing threads at once. ` +
        `"${label('tfjs-n')} / ${label('tfjs-1')}" comes near it where compute dominates a step; at small batches it can come ` +
        `out above it, since the 1-worker configuration has per-step costs of its own (a hand-off to its thread) that are ` +
        `not compute.`,
    );
  }
  out.push('');

  // Step breakdown.
  if (summary.breakdown.length > 0) {
    out.push('One tfjs training step, ms: compute + no core + waiting + transfer + reduce/Adam + other = step (the round with the median step)');
    out.push(
      markdownTable(
        ['workers', 'batch', 'step', 'compute', 'no core', 'waiting', 'transfer', 'reduce + Adam', 'other', 'measured by'],
        summary.breakdown.map((b) => [
          label(b.config), String(b.batch), formatFixed(b.stepMs, 1), formatFixed(b.computeMs, 1), formatFixed(b.noCoreMs, 1),
          b.method === 'totals' ? 'in transfer' : formatFixed(b.waitingMs, 1), formatFixed(b.transferMs, 1),
          formatFixed(b.reduceAdamMs, 2), formatFixed(b.otherMs, 2),
          b.method === 'per-step' ? 'thread CPU, per step' : b.method === 'totals' ? 'process CPU, totals' : '—',
        ]),
        ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
      ),
      '',
    );
    const remote = summary.breakdown.filter((b) => b.remoteCpu);
    if (remote.length > 0) {
      out.push(`${label('remote')}: CPU ms per step of every process involved (same rounds as above); cores busy = total / step`);
      out.push(
        markdownTable(
          ['batch', 'step', 'workers (all)', 'coordinator', 'Redis', 'total', 'cores busy'],
          remote.map((b) => {
            const { workersMs, coordinatorMs, redisMs } = b.remoteCpu!;
            const total = workersMs + coordinatorMs + (redisMs ?? 0);
            return [
              String(b.batch), formatFixed(b.stepMs, 1), formatFixed(workersMs, 1), formatFixed(coordinatorMs, 1), formatFixed(redisMs, 1),
              formatFixed(total, 1), formatFixed(total / b.stepMs, 2),
            ];
          }),
          ['r', 'r', 'r', 'r', 'r', 'r', 'r'],
        ),
        '',
      );
    }
  }

  // Evaluation.
  const evalConfigs = trainConfigs.filter((id) => summary.evaluation.seconds[id] !== undefined);
  if (evalConfigs.length > 0) {
    const ratioHead = has('torch-1') && has('tfjs-n') ? [`PyTorch 1 thr / ${label('tfjs-n')}`] : [];
    out.push('Evaluation of the 10,000 test images, seconds (batches of 500)');
    out.push(
      markdownTable(
        [...evalConfigs.map(label), ...ratioHead],
        [[...evalConfigs.map((id) => formatFixed(summary.evaluation.seconds[id], 2)), ...(ratioHead.length ? [formatFixed(summary.evaluation.tfjsVsPytorch1, 2, '×')] : [])]],
        [...evalConfigs.map(() => 'r' as const), 'r'],
      ),
      '',
    );
  }

  // Memory.
  if (summary.memory.length > 0) {
    const batches = [...new Set(summary.memory.map((m) => m.batch))].sort((a, b) => a - b);
    const memConfigs = trainConfigs.filter((id) => summary.memory.some((m) => m.config === id));
    const heads: string[] = [];
    const cells: ((batch: number) => string)[] = [];
    const mb = (kb: number | undefined) => (kb === undefined ? '—' : formatCount(kb / 1024));
    for (const id of memConfigs) {
      const at = (batch: number) => summary.memory.find((m) => m.config === id && m.batch === batch);
      if (id === 'remote') {
        heads.push(`${label(id)}: coordinator`, `${label(id)}: workers`, `${label(id)}: total`);
        cells.push((b) => mb(at(b)?.coordinatorKB), (b) => at(b)?.workersKB.map((kb) => mb(kb)).join(' + ') ?? '—', (b) => mb(at(b)?.totalKB));
      } else {
        heads.push(id === 'torch-1' ? 'PyTorch' : label(id));
        cells.push((b) => mb(at(b)?.totalKB));
      }
    }
    out.push(`Peak RSS, MB (whole process; threads count with their process). Each batch's figure is the peak up to it: batches run in ascending order`);
    out.push(markdownTable(['batch', ...heads], batches.map((b) => [String(b), ...cells.map((cell) => cell(b))]), ['r', ...heads.map(() => 'r' as const)]), '');
  }

  // Targets.
  out.push(`Targets of issue #4 (N = ${n})`);
  const withBare = summary.targets.some((t) => t.bareCompute !== undefined && t.bareCompute !== null);
  out.push(
    markdownTable(
      ['target', 'measured', 'goal', 'met', ...(withBare ? ['bare compute'] : [])],
      summary.targets.map((t) => [
        t.name, t.name.includes('(MB)') ? formatCount(t.measured) : formatFixed(t.measured, 2, '×'), t.goal,
        t.met === null ? 'not measured' : t.met ? 'yes' : 'NO',
        ...(withBare ? [t.bareCompute === undefined ? '' : formatFixed(t.bareCompute, 2, '×')] : []),
      ]),
      ['l', 'r', 'l', 'l', 'r'],
    ),
  );
  if (notes.length > 0) out.push('', 'Notes:', ...notes.map((note) => `- ${note}`));
  return out.join('\n');
}
