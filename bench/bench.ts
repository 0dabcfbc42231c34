/**
 * `npm run bench`: training images/s of the trainer on the real CIFAR-10 data at several batch sizes, with 1 and
 * N local worker threads and N remote workers over Redis, side by side with PyTorch (1 and 2 threads) running
 * the same network and step; evaluation time for the 10,000 test images; where a step's time goes; peak RSS.
 * Issue #4's targets are checked on the ratios. See bench/README.md.
 *
 * Each tfjs configuration runs in a child process of its own (./tfjs-runner.ts) that lives for the whole run;
 * PyTorch runs in one Python process (./pytorch_step.py --serve). Rounds interleave all of them at each batch
 * size, rotating their order, and the tables show medians over rounds.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../src/cli/run-cli.ts';
import { modelByName } from '../src/model/model-registry.ts';
import { benchHelp, parseBenchOptions, type ParsedBenchOptions } from './bench-options.ts';
import { BenchError } from './bench-error.ts';
import type { BenchSamples, ConfigId, ConfigInfo, MemorySample } from './bench-results.ts';
import { summarize } from './bench-summary.ts';
import { formatReport, type MachineInfo, type RunInfo } from './format-report.ts';
import { findPythonWithTorch, PYTORCH_INSTALL_HINT, PytorchReference } from './pytorch-reference.ts';
import { RemoteWorkers, remoteUnavailable } from './remote-workers.ts';
import { TfjsRunnerClient } from './tfjs-runner-client.ts';
import { checkpointStart, freshStart } from './starting-point.ts';
import { ComputeScaling } from './compute-scaling.ts';
import { loadCifar10 } from '../src/data/cifar10-dataset.ts';
import { BACKEND_CHOICES, type BackendChoice } from '../src/compute/backend.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS_DIR = path.join(ROOT, 'bench', 'results');
const PYTORCH_THREADS = [1, 2] as const;
/** Bare compute's alone/together pairs per batch size and round, and how long each phase computes. */
const BARE_COMPUTE_PAIRS = 6;
const BARE_COMPUTE_PHASE_MS = 250;

const progress = (line: string) => process.stderr.write(`${line}\n`);

async function main(): Promise<number> {
  const options = parseBenchOptions(process.argv.slice(2));
  if (options.help) {
    console.log(benchHelp());
    return 0;
  }
  if (!existsSync(path.join(options.data, 'test_batch.bin'))) {
    throw new BenchError(
      `No CIFAR-10 binary files in ${options.data}. Pass --data DIR or set CIFAR10_DIR, or run \`npm run coordinator\` once: it downloads them there.`,
    );
  }
  // Checked here, before anything starts; each runner reads it again for itself.
  const model = modelByName('tutorial');
  const start = options.checkpoint ? await checkpointStart(options.checkpoint, model) : freshStart(model, 1);
  const checkpoint = options.checkpoint;
  const started = performance.now();
  const startedAt = new Date();
  const loadAverageAtStart = os.loadavg()[0];
  const notes: string[] = [];
  const n = options.workers;

  const tfjs = new Map<ConfigId, TfjsRunnerClient>();
  let remote: RemoteWorkers | null = null;
  let torch: PytorchReference | null = null;
  let bareCompute: ComputeScaling | null = null;
  const cleanUp = () => {
    for (const client of tfjs.values()) client.kill();
    void bareCompute?.close();
    torch?.kill();
    void remote?.stop();
  };
  process.once('SIGINT', () => {
    cleanUp();
    process.exit(130);
  });

  try {
    // Start everything first: data loading and pool start-up are not what is measured.
    progress(`Starting: tfjs with 1${n > 1 ? ` and ${n}` : ''} local worker thread${n > 1 ? 's' : ''}...`);
    tfjs.set('tfjs-1', await TfjsRunnerClient.start('tfjs 1 thread', { data: options.data, backend: options.backend, workers: 1, checkpoint }));
    if (n > 1) tfjs.set('tfjs-n', await TfjsRunnerClient.start(`tfjs ${n} threads`, { data: options.data, backend: options.backend, workers: n, checkpoint }));

    if (options.remote) {
      const why = await remoteUnavailable(options.redis);
      if (why) {
        notes.push(`Remote workers skipped: ${why}.`);
      } else {
        progress(`Starting: ${n} remote worker processes (workers/remote-worker.ts) on ${options.redis}...`);
        try {
          remote = await RemoteWorkers.start(n, options.redis, options.data);
          const client = await TfjsRunnerClient.start(`tfjs ${n} remote`, {
            data: options.data, backend: options.backend, workers: n, redis: options.redis, workerPids: remote.pids, checkpoint,
          });
          tfjs.set('remote', client);
        } catch (error) {
          notes.push(`Remote workers skipped: ${(error as Error).message}`);
          await remote?.stop();
          remote = null;
        }
      }
    } else {
      notes.push('Remote workers skipped: --no-remote.');
    }

    if (options.pytorch) {
      const python = findPythonWithTorch(options.python);
      if (!python) {
        notes.push(PYTORCH_INSTALL_HINT);
        progress(PYTORCH_INSTALL_HINT);
      } else {
        progress(`Starting: PyTorch reference with ${python.executable}...`);
        torch = await PytorchReference.start(python.executable, options.data);
      }
    } else {
      notes.push('PyTorch reference skipped: --no-pytorch.');
    }

    const backend = tfjs.get('tfjs-1')!.describe.match(/\((\w+)\)/)?.[1] ?? String(options.backend);
    const configs = configList(n, backend, tfjs, torch);
    const samples: BenchSamples = { configs, training: [], evaluation: [], memory: [], bareCompute: [], notes };

    if (!options.bareCompute) notes.push('Bare compute skipped: --no-bare-compute.');
    else if (n < 2) notes.push('Bare compute skipped: it needs --workers 2 or more.');
    else if (backend === 'node' || !BACKEND_CHOICES.includes(backend as BackendChoice)) notes.push(`Bare compute skipped: not measured for the ${backend} backend.`);
    else {
      progress(`Starting: bare compute, ${n} threads computing side by side (${backend})...`);
      const { train } = await loadCifar10(options.data, { pixels: true, testLimit: 1 });
      bareCompute = await ComputeScaling.start({ train, model: model.name, weights: start.weights, backend: backend as BackendChoice, threads: n });
    }

    // Prime every tfjs configuration once (JIT, first-use allocations, remote workers joining), untimed.
    for (const [id, client] of tfjs) {
      await client.train({ batch: 32, shards: shardsOf(id, n), steps: 2, warmup: 1 }).catch((error: unknown) => dropRemote(id, error));
    }

    for (let round = 0; round < options.rounds; round++) {
      const roundStarted = performance.now();
      for (const [b, batch] of options.batchSizes.entries()) {
        if (bareCompute && batch >= n) await measureBareCompute(bareCompute, batch, round);
        for (const config of rotate(configs, round + b)) {
          await measureTraining(config, batch, round);
        }
      }
      if (options.evaluate) {
        for (const config of rotate(configs, round)) await measureEvaluation(config, round);
      }
      const roundSeconds = (performance.now() - roundStarted) / 1000;
      if (round === 0 && options.rounds > 1) {
        progress(`Round 1 took ${Math.round(roundSeconds)} s; about ${Math.round(roundSeconds * (options.rounds - 1))} s to go.`);
      }
    }

    async function measureTraining(config: ConfigInfo, batch: number, round: number): Promise<void> {
      const steps = Math.max(options.minSteps, Math.ceil(options.images / batch));
      const where = `round ${round + 1}/${options.rounds}  batch ${String(batch).padStart(3)}  ${config.label.padEnd(18)}`;
      if (config.id === 'torch-1' || config.id === 'torch-2') {
        const threads = config.id === 'torch-1' ? 1 : 2;
        const result = await torch!.train(batch, threads, steps * batch, options.warmup);
        samples.training.push({ config: config.id, batch, round, steps: result.steps, imagesPerSecond: result.imagesPerSecond, msPerStep: result.msPerStep, breakdown: null });
        if (round === 0) recordMemory({ config: 'torch-1', batch, coordinatorKB: result.maxRssKB, workersKB: [], totalKB: result.maxRssKB });
        progress(`${where}  ${Math.round(result.imagesPerSecond).toLocaleString('en-US').padStart(6)} images/s  (${result.msPerStep.toFixed(1)} ms/step)`);
        return;
      }
      const client = tfjs.get(config.id);
      if (!client) return;
      try {
        const result = await client.train({ batch, shards: shardsOf(config.id, n), steps, warmup: options.warmup });
        const msPerStep = (result.seconds * 1000) / steps;
        samples.training.push({ config: config.id, batch, round, steps, imagesPerSecond: result.imagesPerSecond, msPerStep, breakdown: result.breakdown });
        if (round === 0) {
          const workersKB = config.id === 'remote' && remote ? remote.peakRssKB().map((kb) => kb ?? 0) : [];
          recordMemory({ config: config.id, batch, coordinatorKB: result.maxRssKB, workersKB, totalKB: result.maxRssKB + workersKB.reduce((a, c) => a + c, 0) });
        }
        progress(`${where}  ${Math.round(result.imagesPerSecond).toLocaleString('en-US').padStart(6)} images/s  (${msPerStep.toFixed(1)} ms/step)`);
      } catch (error) {
        await dropRemote(config.id, error);
      }
    }

    async function measureBareCompute(scaling: ComputeScaling, batch: number, round: number): Promise<void> {
      const pairs = await scaling.measure(batch, round, BARE_COMPUTE_PAIRS, BARE_COMPUTE_PHASE_MS);
      samples.bareCompute.push(...pairs);
      const ms = (values: number[]) => values.map((v) => v.toFixed(1)).join('/');
      progress(
        `round ${round + 1}/${options.rounds}  batch ${String(batch).padStart(3)}  ${'bare compute'.padEnd(18)}  ` +
          `${pairs.map((p) => `${p.ratio.toFixed(2)}×`).join(' ')}  (alone ${ms(pairs.map((p) => p.aloneMs))} ms, together ${ms(pairs.map((p) => p.togetherMs))} ms)`,
      );
    }

    async function measureEvaluation(config: ConfigInfo, round: number): Promise<void> {
      const where = `round ${round + 1}/${options.rounds}  evaluation  ${config.label.padEnd(18)}`;
      if (config.id === 'torch-1' || config.id === 'torch-2') {
        const result = await torch!.evaluate(config.id === 'torch-1' ? 1 : 2);
        samples.evaluation.push({ config: config.id, round, images: result.images, seconds: result.seconds });
        progress(`${where}  ${result.seconds.toFixed(2)} s`);
        return;
      }
      const client = tfjs.get(config.id);
      if (!client) return;
      try {
        const result = await client.evaluate();
        samples.evaluation.push({ config: config.id, round, images: result.images, seconds: result.seconds });
        progress(`${where}  ${result.seconds.toFixed(2)} s`);
      } catch (error) {
        await dropRemote(config.id, error);
      }
    }

    /** A failing remote configuration is dropped with a note; a failing local one ends the benchmark. */
    async function dropRemote(id: ConfigId, error: unknown): Promise<void> {
      if (id !== 'remote') throw error;
      notes.push(`Remote workers dropped after an error: ${(error as Error).message}`);
      progress(`Remote workers dropped: ${(error as Error).message}`);
      tfjs.get('remote')?.kill();
      tfjs.delete('remote');
      await remote?.stop();
      remote = null;
    }

    function recordMemory(sample: MemorySample): void {
      const existing = samples.memory.findIndex((m) => m.config === sample.config && m.batch === sample.batch);
      if (existing === -1) samples.memory.push(sample);
      else if (sample.totalKB > samples.memory[existing].totalKB) samples.memory[existing] = sample;
    }

    // Done measuring: close everything, then report.
    for (const client of tfjs.values()) await client.close();
    tfjs.clear();
    await bareCompute?.close();
    bareCompute = null;
    await torch?.close();
    await remote?.stop();
    remote = null;

    if (torch) notes.push('PyTorch memory: one process runs both thread counts; its figure is that process\'s peak.');
    const machine: MachineInfo = {
      cpu: cpuModel(), cores: os.availableParallelism(), node: process.version, tfjs: packageVersion('@tensorflow/tfjs-core'), backend,
      pytorch: torch ? `PyTorch ${torch.info.torch} (BLAS: ${torch.info.blas}, ${torch.info.data} data) with ${torch.info.executable}` : null,
      loadAverageAtStart, loadAverageAtEnd: os.loadavg()[0],
    };
    const run: RunInfo = {
      data: options.data, rounds: options.rounds, images: options.images, warmup: options.warmup, workers: n,
      seconds: (performance.now() - started) / 1000, start: start.description,
    };
    const summary = summarize(samples, options.batchSizes, options.rounds);
    console.log(formatReport(summary, configs, machine, run, notes));

    const json = JSON.stringify({ startedAt: startedAt.toISOString(), machine, run, options: jsonOptions(options), configs, summary, samples }, null, 2) + '\n';
    await fs.mkdir(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, `bench-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    await fs.writeFile(file, json);
    if (options.json) await fs.writeFile(options.json, json);
    progress(`\nResults written to ${path.relative(process.cwd(), file)}${options.json ? ` and ${options.json}` : ''}.`);
    return 0;
  } finally {
    cleanUp();
  }
}

function configList(n: number, backend: string, tfjs: ReadonlyMap<ConfigId, TfjsRunnerClient>, torch: PytorchReference | null): ConfigInfo[] {
  const configs: ConfigInfo[] = [];
  const add = (id: ConfigId, label: string, description: string) => configs.push({ id, label, description });
  if (tfjs.has('tfjs-1')) add('tfjs-1', 'tfjs 1 thread', `tfjs (${backend}), 1 local worker thread`);
  if (tfjs.has('tfjs-n')) add('tfjs-n', `tfjs ${n} threads`, `tfjs (${backend}), ${n} local worker threads`);
  if (tfjs.has('remote')) add('remote', `tfjs ${n} remote`, `tfjs (${backend}), ${n} worker processes over Redis`);
  if (torch) {
    for (const threads of PYTORCH_THREADS) {
      add(threads === 1 ? 'torch-1' : 'torch-2', `PyTorch ${threads} thread${threads === 1 ? '' : 's'}`, `PyTorch ${torch.info.torch}, torch.set_num_threads(${threads})`);
    }
  }
  return configs;
}

/** Each worker gets one shard of every batch. */
function shardsOf(id: ConfigId, n: number): number {
  return id === 'tfjs-1' ? 1 : n;
}

/** The list started at position `by` (so no configuration always runs first or right after another). */
function rotate<T>(list: readonly T[], by: number): T[] {
  if (list.length === 0) return [];
  const k = by % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

function cpuModel(): string {
  const lscpu = spawnSync('lscpu', [], { encoding: 'utf8' });
  const line = lscpu.status === 0 ? /^Model name:\s*(.+)$/m.exec(lscpu.stdout)?.[1] : undefined;
  return (line ?? os.cpus()[0]?.model ?? 'unknown CPU').trim();
}

function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function jsonOptions(options: ParsedBenchOptions): Record<string, unknown> {
  const { help: _help, ...rest } = options;
  return rest;
}

// Every child is closed or killed by now; should anything still hold the event loop, do not hang on it.
runCli(() => main().finally(() => setTimeout(() => process.exit(), 3000).unref()));
