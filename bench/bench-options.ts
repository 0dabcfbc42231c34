/** Everything `npm run bench` can be told; defaults in one place (DEFAULT_BENCH_OPTIONS, QUICK_BENCH_OPTIONS). */
import { BACKEND_CHOICES, type BackendChoice } from '../src/compute/backend.ts';
import { resolveDataDir } from '../src/data/data-dir.ts';
import { InvalidOptionError } from '../src/errors/index.ts';
import { type FlagTable, flagsHelp, parseFlags } from '../src/options/parse-flags.ts';

export interface BenchOptions {
  /** CIFAR-10 binary folder (--data, else $CIFAR10_DIR, else data/cifar-10-batches-bin). */
  data: string;
  /** Batch sizes measured (--batches 10,32,128,512). */
  batches: string;
  /** N: worker threads of the multi-worker configuration, and remote worker processes (--workers). */
  workers: number;
  /** Rounds; every point is measured once per round, interleaved with the other configurations (--rounds). */
  rounds: number;
  /** Images timed per point, rounded up to whole batches (--images); warm-up steps come on top. */
  images: number;
  /** Fewest timed steps per point, whatever --images says (--min-steps). */
  minSteps: number;
  /** Steps run before the clock starts at each point (--warmup). */
  warmup: number;
  /** Compute backend of the tfjs workers (--backend; auto: tfjs-node if it loads, else wasm — what the trainer does). */
  backend: BackendChoice;
  /** Also write the results here (--json FILE); they always go to bench/results/ too. */
  json: string | undefined;
  /** Measure evaluation of the 10,000 test images (--no-eval skips it). */
  evaluate: boolean;
  /** Measure remote workers over Redis when Redis is reachable (--no-remote skips them). */
  remote: boolean;
  /** Redis URL for the remote workers (--redis, else $REDIS_URL, else redis://127.0.0.1:6379). */
  redis: string;
  /**
   * Measure how bare compute scales on this machine (./compute-scaling.ts): N threads computing the shards of
   * each batch with nothing else to do against one thread alone, at every batch size in every round
   * (--no-bare-compute skips it).
   */
  bareCompute: boolean;
  /** Run the PyTorch reference when a Python with torch is found (--no-pytorch skips it). */
  pytorch: boolean;
  /** Python to use for the reference (--python, else $PYTHON, /usr/bin/python3, python3: the first with torch). */
  python: string | undefined;
  /** A smoke run: batches 10 and 128, one round, few images (--quick). */
  quick: boolean;
  /**
   * Start every tfjs point from this run's checkpoint (an --out folder of the tutorial model) instead of fresh
   * weights (--checkpoint DIR): our kernels skip the work of ReLU-dead units, so a step's cost depends on how far
   * training has gone. PyTorch's dense step does not, and keeps its fresh weights.
   */
  checkpoint: string | undefined;
}

export const DEFAULT_BENCH_OPTIONS: BenchOptions = {
  data: 'data/cifar-10-batches-bin',
  batches: '10,32,128,512',
  workers: 2,
  rounds: 3,
  images: 3072,
  minSteps: 4,
  warmup: 2,
  backend: 'auto',
  json: undefined,
  evaluate: true,
  remote: true,
  redis: 'redis://127.0.0.1:6379',
  bareCompute: true,
  pytorch: true,
  python: undefined,
  quick: false,
  checkpoint: undefined,
};

/** What --quick changes; any of these can still be set explicitly after it. */
export const QUICK_BENCH_OPTIONS: Partial<BenchOptions> = { batches: '10,128', rounds: 1, images: 256, minSteps: 2, warmup: 1 };

export const BENCH_FLAGS: FlagTable<BenchOptions> = {
  data: { kind: 'string', key: 'data', help: 'CIFAR-10 binary folder (else $CIFAR10_DIR, else data/cifar-10-batches-bin)' },
  batches: { kind: 'string', key: 'batches', help: 'Comma-separated batch sizes' },
  workers: { kind: 'integer', key: 'workers', help: 'Worker threads (and remote worker processes) of the N-worker runs', min: 1 },
  rounds: { kind: 'integer', key: 'rounds', help: 'Interleaved rounds; tables show medians', min: 1 },
  images: { kind: 'integer', key: 'images', help: 'Images timed per point (rounded up to whole batches)', min: 1 },
  'min-steps': { kind: 'integer', key: 'minSteps', help: 'Fewest timed steps per point', min: 1 },
  warmup: { kind: 'integer', key: 'warmup', help: 'Untimed steps before each point', min: 1 },
  backend: { kind: 'string', key: 'backend', help: 'Compute backend of the tfjs workers', choices: BACKEND_CHOICES },
  json: { kind: 'string', key: 'json', help: 'Also write the results to this JSON file' },
  eval: { kind: 'boolean', key: 'evaluate', help: 'Time the evaluation of the 10,000 test images (--no-eval skips it)' },
  remote: { kind: 'boolean', key: 'remote', help: 'Time remote workers over Redis when reachable (--no-remote skips them)' },
  redis: { kind: 'string', key: 'redis', help: 'Redis URL for the remote workers (else $REDIS_URL)' },
  'bare-compute': { kind: 'boolean', key: 'bareCompute', help: 'Measure how bare compute scales here: N threads computing shards, nothing else, vs 1 (--no-bare-compute skips it)' },
  pytorch: { kind: 'boolean', key: 'pytorch', help: 'Run the PyTorch reference side by side (--no-pytorch skips it)' },
  python: { kind: 'string', key: 'python', help: 'Python with torch (else $PYTHON, /usr/bin/python3, python3)' },
  quick: { kind: 'boolean', key: 'quick', help: 'Smoke run: batches 10,128, 1 round, 256 images per point' },
  checkpoint: { kind: 'string', key: 'checkpoint', help: 'Start the tfjs points from the checkpoint in this --out folder of a tutorial run (else fresh weights)' },
};

export interface ParsedBenchOptions extends BenchOptions {
  readonly help: boolean;
  readonly batchSizes: readonly number[];
}

export function parseBenchOptions(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ParsedBenchOptions {
  const quick = argv.includes('--quick');
  const defaults: BenchOptions = {
    ...DEFAULT_BENCH_OPTIONS,
    ...(quick ? QUICK_BENCH_OPTIONS : {}),
    data: resolveDataDir(undefined, env),
    redis: env.REDIS_URL || DEFAULT_BENCH_OPTIONS.redis,
  };
  const options = parseFlags(argv, BENCH_FLAGS, defaults);
  return { ...options, data: resolveDataDir(options.data, env), batchSizes: parseBatches(options.batches) };
}

export function benchHelp(): string {
  return flagsHelp('npm run bench -- [flags]', BENCH_FLAGS, DEFAULT_BENCH_OPTIONS);
}

function parseBatches(text: string): number[] {
  const parts = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
  const sizes = parts.map(Number);
  if (parts.length === 0 || sizes.some((n, i) => !/^\d+$/.test(parts[i]) || !Number.isSafeInteger(n) || n < 1)) {
    throw new InvalidOptionError(`--batches must be a comma-separated list of whole numbers ≥ 1, e.g. 10,32,128,512; got '${text}'.`);
  }
  return [...new Set(sizes)].sort((a, b) => a - b);
}
