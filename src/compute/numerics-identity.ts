/**
 * What a backend's bytes depend on beyond the run's settings: its "numerics identity", recorded in the checkpoint,
 * checked on --resume and announced to remote workers (a worker whose engine reports another identity refuses).
 *
 * - wasm, fused, cpu: WebAssembly and JavaScript float32 arithmetic is IEEE-exact and the summation orders are
 *   fixed by the shapes: the same bytes on every machine. Their identity is a constant.
 * - node (native TensorFlow): measured (README, "Determinism"), the bytes change with the TensorFlow release,
 *   TensorFlow's intra-op thread count, oneDNN on or off (TF_ENABLE_ONEDNN_OPTS) and the CPU instructions oneDNN
 *   uses (ONEDNN_MAX_CPU_ISA, else the best the CPU has), and not with the inter-op thread count or how many
 *   cores the process may use. The intra-op count is pinned to 1 here (pinNativeThreads): one compute thread per
 *   worker, as for every other backend, so the bytes never depend on the machine's core count. oneDNN's kernels
 *   may also depend on cache sizes, which we could not vary: the identity names the CPU model as well, so two
 *   machines agree only when they report the same model.
 */
import fs from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { BackendError } from '../errors/index.ts';

/** Set before TensorFlow loads (it reads them once, from the process environment). */
const PINNED: Readonly<Record<string, string>> = {
  // One thread per op: a worker is one thread, as on wasm and fused; the bytes depend on this count.
  TF_NUM_INTRAOP_THREADS: '1',
  // Eager ops run on the calling thread; the inter-op pool would only hold idle threads (bytes do not depend on it).
  TF_NUM_INTEROP_THREADS: '1',
  // Each thread's TensorFlow context gets its own intra-op pool: with the process-wide default, the native worker
  // threads of one process queued behind one pool thread and computed no faster together than one alone.
  TF_OVERRIDE_GLOBAL_THREADPOOL: '1',
};

/**
 * Pins TensorFlow's threading in the process environment, before it loads. Only the main thread can: a worker
 * thread's process.env is its own copy, invisible to TensorFlow's getenv(). There it checks that its parent pinned.
 * Also sets TF_ENABLE_ONEDNN_OPTS=1 and TF_CPP_MIN_LOG_LEVEL=2 (no start-up lines) unless the environment says otherwise.
 */
export function pinNativeThreads(): void {
  if (!isMainThread) {
    const wrong = Object.entries(PINNED).filter(([k, v]) => process.env[k] !== v).map(([k]) => `${k}=${process.env[k] ?? '(unset)'}`);
    if (wrong.length > 0) {
      throw new BackendError(
        `Backend 'node' in a worker thread whose process did not pin TensorFlow's threads (${wrong.join(', ')}); ` +
          `the main thread must call pinNativeThreads() before starting native worker threads.`,
      );
    }
    return;
  }
  for (const [k, v] of Object.entries(PINNED)) process.env[k] = v;
  // TensorFlow's default, made explicit: the identity then says what ran, and TensorFlow skips its start-up note.
  process.env.TF_ENABLE_ONEDNN_OPTS ??= '1';
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
}

/** The constant identities: these backends give the same bytes on every machine. */
const PORTABLE: Readonly<Record<'wasm' | 'fused' | 'cpu', string>> = {
  wasm: 'wasm: IEEE float32, fixed summation order (any machine)',
  fused: 'fused: IEEE float32, fixed summation order (any machine)',
  cpu: 'cpu: IEEE float32, fixed summation order (any machine)',
};

export function portableNumerics(backend: 'wasm' | 'fused' | 'cpu'): string {
  return PORTABLE[backend];
}

/**
 * The identity of the native engine running in this thread, e.g.
 * `node: tf 2.21.0, intra-op 1, onednn on, isa avx512_core_bf16, cpu AMD EPYC`. `tfVersion` is TF_Version() of
 * the loaded library.
 */
export function nativeNumerics(tfVersion: string, env: NodeJS.ProcessEnv = process.env, cpuinfo = readCpuinfo()): string {
  const onednn = /^(0|false)$/i.test(env.TF_ENABLE_ONEDNN_OPTS ?? '') ? 'off' : 'on';
  const intra = env.TF_NUM_INTRAOP_THREADS ?? 'all cores';
  return `node: tf ${tfVersion}, intra-op ${intra}, onednn ${onednn}, isa ${effectiveIsa(cpuFlags(cpuinfo), env.ONEDNN_MAX_CPU_ISA)}, cpu ${cpuModel(cpuinfo)}`;
}

/** oneDNN's x86-64 instruction-set levels, lowest first, with the CPU flags (as /proc/cpuinfo names them) each needs. */
const ISA_LEVELS: readonly { readonly name: string; readonly needs: readonly string[] }[] = [
  { name: 'sse41', needs: ['sse4_1'] },
  { name: 'avx', needs: ['avx'] },
  { name: 'avx2', needs: ['avx2', 'fma'] },
  { name: 'avx2_vnni', needs: ['avx_vnni'] },
  { name: 'avx2_vnni_2', needs: ['avx_vnni_int8', 'avx_ne_convert'] },
  { name: 'avx512_core', needs: ['avx512f', 'avx512bw', 'avx512vl', 'avx512dq'] },
  { name: 'avx512_core_vnni', needs: ['avx512_vnni'] },
  { name: 'avx512_core_bf16', needs: ['avx512_bf16'] },
  { name: 'avx10_1_512', needs: ['avx512_fp16'] },
  { name: 'avx10_1_512_amx', needs: ['amx_tile', 'amx_int8', 'amx_bf16'] },
  { name: 'avx10_1_512_amx_fp16', needs: ['amx_fp16'] },
];
/** ONEDNN_MAX_CPU_ISA's older spellings. */
const ISA_ALIASES: Readonly<Record<string, string>> = { avx512_core_fp16: 'avx10_1_512', avx512_core_amx: 'avx10_1_512_amx', avx512_core_amx_fp16: 'avx10_1_512_amx_fp16' };

/**
 * The level oneDNN dispatches to: the highest the CPU has (each level needs its own flags and those of the levels
 * below it; the avx2_vnni levels are a side branch that AVX-512 levels do not need), capped by ONEDNN_MAX_CPU_ISA.
 */
export function effectiveIsa(flags: ReadonlySet<string>, cap: string | undefined): string {
  const order = ISA_LEVELS.map((l) => l.name);
  const wanted = cap?.trim().toLowerCase();
  const named = !wanted || wanted === 'default' || wanted === 'all' ? order.length - 1 : order.indexOf(ISA_ALIASES[wanted] ?? wanted);
  // oneDNN ignores a value it does not know.
  const capAt = named < 0 ? order.length - 1 : named;
  let best = 'baseline';
  let mainLine = true;
  for (const [i, level] of ISA_LEVELS.entries()) {
    const branch = level.name.startsWith('avx2_vnni');
    const has = level.needs.every((f) => flags.has(f));
    if (!branch) mainLine &&= has;
    if (i > capAt || !(branch ? mainLine && has && best.startsWith('avx2') : mainLine)) continue;
    best = level.name;
  }
  return best;
}

function readCpuinfo(): string {
  try {
    return fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

function cpuFlags(cpuinfo: string): Set<string> {
  const line = /^flags\s*:(.*)$/m.exec(cpuinfo);
  return new Set((line?.[1] ?? '').trim().split(/\s+/).filter(Boolean));
}

function cpuModel(cpuinfo: string): string {
  return /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1].trim().replace(/\s+/g, ' ') || 'unknown';
}
