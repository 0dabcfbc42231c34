/**
 * `npm run bench:kernels`: the convolution kernels of the wasm backend, layer by layer, for the networks users
 * train (./kernel-bench-shapes.ts), in all three directions (forward, input gradient, filter gradient): time per
 * call and GFLOP/s counted as 2 × the multiply-adds of the direct convolution (so Winograd shows an "effective" rate
 * above what direct arithmetic could reach), against this machine's 128-bit SIMD peak (./kernel-bench-peak.ts).
 * Baselines in the same run: tfjs-wasm's stock kernels (XNNPACK), the project's direct GEMM kernels, and
 * PyTorch's (one thread) when a Python with torch is found.
 *
 * Rounds: every round times every kernel on every shape once (the kernels' order rotating), so drift of a shared
 * machine spreads over all of them; tables show the median over rounds and ratios are medians of per-round ratios.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { initBackend } from '../src/compute/backend.ts';
import { InvalidOptionError, TrainerError } from '../src/errors/index.ts';
import { type FlagTable, flagsHelp, parseFlags } from '../src/options/parse-flags.ts';
import { findPythonWithTorch } from './pytorch-reference.ts';
import { formatFixed, markdownTable } from './format-table.ts';
import { DIRECTIONS, type KernelImpl, kernelImpls, registeredAlgorithm, shapeData } from './kernel-bench-impls.ts';
import { measureSimdPeak, type SimdPeak } from './kernel-bench-peak.ts';
import { type ConvShape, NETWORKS, type NetworkName, directFlops, networkShapes, shapeKey } from './kernel-bench-shapes.ts';
import { type Direction, TorchConvReference } from './kernel-bench-torch.ts';

interface KernelBenchOptions {
  networks: string;
  rounds: number;
  /** Seconds of calls per sample (at least one call). */
  seconds: number;
  /** Shard size for every network (0: each network's default). */
  batch: number;
  directions: string;
  pytorch: boolean;
  python: string | undefined;
  json: string | undefined;
}

const DEFAULTS: KernelBenchOptions = {
  networks: NETWORKS.join(','), rounds: 3, seconds: 0.25, batch: 0, directions: DIRECTIONS.join(','), pytorch: true, python: undefined, json: undefined,
};

const FLAGS: FlagTable<KernelBenchOptions> = {
  networks: { kind: 'string', key: 'networks', help: `Comma-separated networks (${NETWORKS.join(', ')})` },
  rounds: { kind: 'integer', key: 'rounds', help: 'Interleaved rounds; tables show medians', min: 1 },
  seconds: { kind: 'number', key: 'seconds', help: 'Seconds of calls per sample (at least one call)' },
  batch: { kind: 'integer', key: 'batch', help: 'Images per shard for every network (0: 64 for bn-cnn, 128 for airbench)', min: 0 },
  directions: { kind: 'string', key: 'directions', help: `Comma-separated directions (${DIRECTIONS.join(', ')})` },
  pytorch: { kind: 'boolean', key: 'pytorch', help: 'Time PyTorch\'s kernels too (--no-pytorch skips them)' },
  python: { kind: 'string', key: 'python', help: 'Python with torch (else $PYTHON, /usr/bin/python3, python3)' },
  json: { kind: 'string', key: 'json', help: 'Also write the results to this JSON file' },
};

interface Point {
  readonly shape: ConvShape;
  readonly direction: Direction;
  readonly kernel: string;
  /** Seconds per call, one per round. */
  readonly samples: number[];
}

const median = (values: readonly number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function list<T extends string>(text: string, allowed: readonly T[], flag: string): T[] {
  const items = text.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = items.filter((s) => !allowed.includes(s as T));
  if (bad.length || !items.length) throw new InvalidOptionError(`--${flag} takes a comma-separated list of ${allowed.join(', ')}; got '${text}'.`);
  return items as T[];
}

/** Seconds per call: one untimed call, then calls until `seconds` have passed. */
function timeCalls(call: () => void, seconds: number): number {
  call();
  let calls = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    call();
    calls++;
    elapsed = (performance.now() - start) / 1000;
  } while (elapsed < seconds);
  return elapsed / calls;
}

function rotate<T>(items: readonly T[], by: number): T[] {
  const k = by % Math.max(1, items.length);
  return [...items.slice(k), ...items.slice(0, k)];
}

async function main(): Promise<void> {
  const options = parseFlags(process.argv.slice(2), FLAGS, DEFAULTS);
  if (options.help) {
    console.log(flagsHelp('npm run bench:kernels -- [flags]', FLAGS, DEFAULTS));
    return;
  }
  const networks = list(options.networks, NETWORKS, 'networks');
  const directions = list(options.directions, DIRECTIONS, 'directions');
  if (!(options.seconds > 0)) throw new InvalidOptionError(`--seconds must be > 0; got ${options.seconds}.`);
  if ((await initBackend('wasm')) !== 'wasm') throw new TrainerError('The wasm backend did not start.');

  // Unique shapes (airbench93 and 94 share layers), in network order.
  const rows: ConvShape[] = networks.flatMap((net: NetworkName) => networkShapes(net, options.batch || undefined));
  const unique = new Map<string, ConvShape>();
  for (const s of rows) if (!unique.has(shapeKey(s))) unique.set(shapeKey(s), s);

  let torch: TorchConvReference | null = null;
  let torchNote = 'PyTorch: skipped (--no-pytorch)';
  if (options.pytorch) {
    const python = findPythonWithTorch(options.python);
    if (python) {
      torch = await TorchConvReference.start(python.executable);
      torchNote = `PyTorch ${torch.version} (${python.executable}), 1 thread, NCHW`;
    } else {
      torchNote = 'PyTorch: not found (apt-get install python3-torch)';
    }
  }

  process.stderr.write('Measuring the SIMD peak…\n');
  const peakBefore = await measureSimdPeak(2);
  const impls = kernelImpls().filter((k) => directions.includes(k.direction));
  const points = new Map<string, Point>();
  const point = (s: ConvShape, direction: Direction, kernel: string): Point => {
    const key = `${shapeKey(s)}|${direction}|${kernel}`;
    let p = points.get(key);
    if (!p) points.set(key, (p = { shape: s, direction, kernel, samples: [] }));
    return p;
  };

  for (let round = 0; round < options.rounds; round++) {
    let i = 0;
    for (const s of unique.values()) {
      process.stderr.write(`round ${round + 1}/${options.rounds}: ${s.network} ${s.layer} (${shapeKey(s)})\n`);
      const data = shapeData(s);
      for (const direction of directions) {
        const here: (KernelImpl | 'pytorch')[] = [...impls.filter((k) => k.direction === direction), ...(torch ? ['pytorch' as const] : [])];
        for (const impl of rotate(here, round + i++)) {
          if (impl === 'pytorch') {
            try {
              point(s, direction, 'PyTorch').samples.push(await torch!.time(s, direction, options.seconds * 3));
            } catch (err) {
              process.stderr.write(`  ${(err as Error).message}\n`);
            }
            continue;
          }
          const run = impl.prepare(s, data);
          if (!run) continue;
          try {
            point(s, direction, impl.name).samples.push(timeCalls(run.call, options.seconds));
          } finally {
            run.dispose?.();
          }
        }
      }
    }
  }
  const peakAfter = await measureSimdPeak(2);
  torch?.close();

  const peak: SimdPeak = {
    ghz: Math.max(peakBefore.ghz, peakAfter.ghz),
    theoreticalGflops: Math.max(peakBefore.theoreticalGflops, peakAfter.theoreticalGflops),
    tileGflops: Math.max(peakBefore.tileGflops, peakAfter.tileGflops),
  };
  const report = formatReport(rows, directions, points, peak, torchNote, options.rounds);
  console.log(report);

  const json = {
    date: new Date().toISOString(), cpu: os.cpus()[0]?.model, node: process.version, peak, peakBefore, peakAfter, torch: torchNote,
    points: [...points.values()].map((p) => ({ ...p, shapeKey: shapeKey(p.shape), flops: directFlops(p.shape), medianSeconds: median(p.samples) })),
  };
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  const file = new URL(`./results/kernel-bench-${json.date.replace(/[:.]/g, '-')}.json`, import.meta.url);
  writeFileSync(file, JSON.stringify(json, null, 2));
  if (options.json) writeFileSync(options.json, JSON.stringify(json, null, 2));
}

/** Per-round ratio a/b of two kernels' samples, median over rounds. */
function ratio(points: Map<string, Point>, s: ConvShape, d: Direction, a: string, b: string): number {
  const pa = points.get(`${shapeKey(s)}|${d}|${a}`);
  const pb = points.get(`${shapeKey(s)}|${d}|${b}`);
  if (!pa || !pb) return NaN;
  const n = Math.min(pa.samples.length, pb.samples.length);
  return median(Array.from({ length: n }, (_, i) => pb.samples[i] / pa.samples[i])); // speed ratio = time b / time a
}

function formatReport(rows: readonly ConvShape[], directions: readonly Direction[], points: Map<string, Point>, peak: SimdPeak, torchNote: string, rounds: number): string {
  const out: string[] = [];
  out.push(`Kernel benchmark: ${os.cpus()[0]?.model ?? 'CPU'} (${os.cpus().length} cores), Node ${process.version}, ${new Date().toISOString().slice(0, 16)} UTC, median of ${rounds} interleaved round(s).`);
  out.push(`Peak, one core, 128-bit SIMD without FMA: clock ${peak.ghz.toFixed(2)} GHz (best of short integer-add chains) × 16 flop/cycle ` +
    `(2 f32x4 mul + 2 f32x4 add pipes) = ${peak.theoreticalGflops.toFixed(1)} GFLOP/s; the project's 4×8 register tile on L1-resident data: ` +
    `${peak.tileGflops.toFixed(1)} GFLOP/s (${((100 * peak.tileGflops) / peak.theoreticalGflops).toFixed(0)}%).`);
  out.push('GFLOP/s = 2 × multiply-adds of the direct convolution / time: Winograd\'s are "effective" rates and can exceed the peak. ' +
    `Cells: GFLOP/s (ms per call). ${torchNote}. XNNPACK reuses its packed filter between calls (its best case).`);
  const names = ['XNNPACK', 'stock', 'direct', 'F(2×2)', 'F(4×4)', 'registered', 'PyTorch'];
  for (const d of directions) {
    const present = names.filter((k) => rows.some((s) => points.has(`${shapeKey(s)}|${d}|${k}`)));
    const base = d === 'forward' ? 'XNNPACK' : 'direct';
    const headers = ['network', 'layer', 'shape', ...present, 'rule', 'registered / direct', ...(base !== 'direct' ? [`registered / ${base}`] : []), ...(present.includes('PyTorch') ? ['registered / PyTorch'] : []), '% of peak'];
    const body = rows.map((s) => {
      const cells = present.map((k) => {
        const p = points.get(`${shapeKey(s)}|${d}|${k}`);
        if (!p || !p.samples.length) return '—';
        const t = median(p.samples);
        return `${formatFixed(directFlops(s) / t / 1e9, 1)} (${formatFixed(t * 1000, 1)})`;
      });
      const reg = points.get(`${shapeKey(s)}|${d}|registered`);
      const regGflops = reg ? directFlops(s) / median(reg.samples) / 1e9 : NaN;
      return [
        s.network, s.layer, `${s.n}×${s.h}×${s.w}, ${s.cin}→${s.cout}`, ...cells, registeredAlgorithm(s, d),
        formatFixed(ratio(points, s, d, 'registered', 'direct'), 2, '×'),
        ...(base !== 'direct' ? [formatFixed(ratio(points, s, d, 'registered', base), 2, '×')] : []),
        ...(present.includes('PyTorch') ? [formatFixed(ratio(points, s, d, 'registered', 'PyTorch'), 2, '×')] : []),
        formatFixed((100 * regGflops) / peak.theoreticalGflops, 0, '%'),
      ];
    });
    out.push('', `### ${d}`, markdownTable(headers, body, headers.map((_, i) => (i < 3 || headers[i] === 'rule' ? 'l' : 'r'))));
  }
  return out.join('\n');
}

main().catch((err: unknown) => {
  console.error(err instanceof TrainerError ? err.message : err);
  process.exitCode = 1;
});
