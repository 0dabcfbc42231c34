import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../errors/index.ts';
import { autoRule } from './auto-backend.ts';
import { nativeNumerics, pinNativeThreads, portableNumerics } from './numerics-identity.ts';
import { registerConv2dBackpropFilterWasm } from './kernels/conv2d-backprop-filter-wasm.ts';
import { registerWasmTrainingKernels } from './kernels/wasm-training-kernels.ts';

/** The tfjs backends, plus 'fused': the model's own WebAssembly SIMD forward + backward (src/compute/fused), no tfjs. */
export type BackendName = TfjsBackendName | 'fused';
type TfjsBackendName = 'node' | 'wasm' | 'cpu';
export type BackendChoice = 'auto' | BackendName;
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'node', 'wasm', 'cpu', 'fused'];

export interface InitBackendOptions {
  /**
   * Whether 'auto' may try @tensorflow/tfjs-node. Default true. Pass false in every worker thread but one:
   * the native addon fails to load in a second thread of a process ("Module did not self-register").
   * An explicit 'node' choice ignores this.
   */
  allowNative?: boolean;
  /** Where fallback warnings go (default console.warn). */
  warn?: (message: string) => void;
  /**
   * The model has a fused implementation (src/compute/fused): 'auto' then picks 'fused' when tfjs-node is not
   * used, instead of wasm. Default false. 'fused' itself starts no tfjs backend; the caller runs the module.
   */
  fused?: boolean;
  /** The model to compute: 'auto' then follows its row of ./auto-backend.ts (the fastest measured first). */
  model?: string;
}

/** What to do instead when an explicitly chosen backend fails. */
const ADVICE: Readonly<Record<TfjsBackendName, string>> = {
  node: 'Use --backend wasm (or auto, which falls back to wasm).',
  wasm: 'Use --backend cpu (much slower), or fix the installation (npm ci).',
  cpu: 'Reinstall the dependencies (npm ci).',
};

/** tfjs's own name for each of our backends. */
const TFJS_NAME: Readonly<Record<TfjsBackendName, string>> = { node: 'tensorflow', wasm: 'wasm', cpu: 'cpu' };
const NATIVE_PACKAGE = '@tensorflow/tfjs-node';

// Per thread: every worker thread has its own module instances and its own tfjs engine.
let active: TfjsBackendName | null = null;
let wasmSimd: boolean | null = null;
let queue: Promise<unknown> = Promise.resolve();

/**
 * Starts a tfjs backend in this thread and makes it current. Returns the backend that runs.
 *
 * - 'auto': the first of the model's row in ./auto-backend.ts (the fastest measured first; the default row without
 *   `model`: node, then wasm) that runs here — 'fused' only if `fused` (the model has a fused implementation),
 *   'node' only if `allowNative` (default) and it loads — else cpu with a warning.
 * - 'node' | 'wasm' | 'cpu': exactly that one, or a BackendError that names it and says why it failed.
 * - 'fused': returned as is; no tfjs backend is started (the caller runs the model's fused module).
 *
 * Also registers tfjs's gradient functions and, for wasm, the project's kernels (the missing
 * Conv2DBackpropFilter, and faster Conv2D / Conv2DBackpropInput / BatchMatMul / MaxPoolGrad), so the thread can train.
 *
 * Idempotent: a second call in the same thread returns the backend already running ('auto' keeps whatever
 * the first call chose). Calls are serialised, so concurrent callers never race tfjs's global state.
 */
export function initBackend(choice: BackendChoice, options: InitBackendOptions = {}): Promise<BackendName> {
  const run = queue.then(() => initBackendNow(choice, options));
  queue = run.catch(() => undefined);
  return run;
}

async function initBackendNow(choice: BackendChoice, options: InitBackendOptions): Promise<BackendName> {
  if (!BACKEND_CHOICES.includes(choice)) {
    throw new BackendError(`Unknown backend '${String(choice)}'. Choose one of: ${BACKEND_CHOICES.join(', ')}.`);
  }
  const warn = options.warn ?? ((message: string) => console.warn(message));
  if (choice === 'fused') return 'fused';
  // 'fused' first where it is the model's fastest and it has one: tfjs then never loads @tensorflow/tfjs, whose
  // layers, converter and data packages cost ~85 MB per thread and which 'fused' does not need.
  const order = autoRule(options.model).order.filter((b) => (b !== 'fused' || options.fused) && (b !== 'node' || (options.allowNative ?? true)));
  if (choice === 'auto' && order[0] === 'fused' && active === null) return 'fused';
  await registerGradients();
  if (active !== null && (choice === 'auto' || choice === active)) {
    // Already running; re-select it if something else in this thread switched tfjs away from it.
    if (tf.getBackend() !== TFJS_NAME[active]) await select(active);
    return active;
  }
  if (choice !== 'auto') {
    try {
      await activate(choice);
    } catch (err) {
      throw new BackendError(`${(err as Error).message} ${ADVICE[choice]}`, { cause: err });
    }
    return (active = choice);
  }

  const failures: string[] = [];
  for (const name of order) {
    if (name === 'fused') return 'fused';
    try {
      await activate(name);
      return (active = name);
    } catch (err) {
      // tfjs-node not installed is the normal case on most machines: say nothing. Installed but broken deserves a
      // line (a failing wasm is named in the cpu fallback's warning below).
      if (name === 'node' && !(err instanceof NativeMissing)) warn(`Backend: ${(err as Error).message} Trying the next one.`);
      failures.push(`${name}: ${(err as Error).message}`);
    }
  }
  try {
    await activate('cpu');
  } catch (err) {
    failures.push(`cpu: ${(err as Error).message}`);
    throw new BackendError(`No tfjs backend could start in this thread. ${failures.join(' | ')} ${ADVICE.cpu}`);
  }
  warn(
    `Backend: falling back to the pure-JavaScript 'cpu' backend, which trains about 50-80x slower than wasm. ` +
      `Why the others did not start: ${failures.join(' | ')}`,
  );
  return (active = 'cpu');
}

let gradients: Promise<void> | null = null;

/**
 * tfjs's gradient functions (tf.grads etc. throw "gradient function not found for Sum" without them). In Node,
 * tfjs-core's entry point (dist/tf-core.node.js) ships without them; the union package @tensorflow/tfjs
 * registers them into tfjs's global registry, shared with our tfjs-core. Loaded here, not at module load,
 * so importing this file for BACKEND_CHOICES stays cheap.
 */
function registerGradients(): Promise<void> {
  gradients ??= import('@tensorflow/tfjs').then(
    () => undefined,
    (err) => {
      gradients = null;
      throw new BackendError(`Could not load @tensorflow/tfjs, which provides tfjs's gradients (${reason(err)}). Run npm install.`);
    },
  );
  return gradients;
}

/** tfjs-node is simply not installed (the usual case; it needs a libtensorflow download). */
class NativeMissing extends BackendError {}

async function activate(name: TfjsBackendName): Promise<void> {
  switch (name) {
    case 'node':
      await loadNative();
      break;
    case 'wasm':
      try {
        await import('@tensorflow/tfjs-backend-wasm');
      } catch (err) {
        throw new BackendError(
          `Backend 'wasm' failed: @tensorflow/tfjs-backend-wasm could not be loaded (${reason(err)}).`,
        );
      }
      // Before the first training step: stock tfjs-backend-wasm 4.x has no Conv2DBackpropFilter, its
      // Conv2DBackpropInput, transposed BatchMatMul and MaxPoolGrad are slow scalar loops, and our Conv2D beats
      // XNNPACK's on these shapes (./kernels).
      registerConv2dBackpropFilterWasm();
      registerWasmTrainingKernels();
      break;
    case 'cpu':
      try {
        await import('@tensorflow/tfjs-backend-cpu');
      } catch (err) {
        throw new BackendError(`Backend 'cpu' failed: @tensorflow/tfjs-backend-cpu could not be loaded (${reason(err)}).`);
      }
      break;
  }
  await select(name);
  if (name === 'wasm' && wasmSimd === null) {
    wasmSimd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
  }
}

async function loadNative(): Promise<void> {
  // TensorFlow reads its thread counts once, when it loads (./numerics-identity.ts).
  pinNativeThreads();
  // A variable specifier: the package is optional and usually absent, so TypeScript must not resolve it.
  const specifier: string = NATIVE_PACKAGE;
  try {
    await import(specifier);
  } catch (err) {
    const code = (err as { code?: string }).code;
    const msg = reason(err);
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && msg.includes(NATIVE_PACKAGE)) {
      throw new NativeMissing(
        `Backend 'node' failed: ${NATIVE_PACKAGE} is not installed (an optional dependency: its install downloads ` +
          `libtensorflow, which TFJS_NODE_BASE_URI or a libtensorflow unpacked into its deps/ can supply offline).`,
      );
    }
    const hint = /did not self-register/i.test(msg)
      ? ' The native addon loads in only one thread per process: run one native worker per process or use wasm in threads.'
      : '';
    throw new BackendError(`Backend 'node' failed: ${NATIVE_PACKAGE} is installed but did not load (${msg}).${hint}`);
  }
  if (tf.findBackendFactory(TFJS_NAME.node) == null) {
    throw new BackendError(
      `Backend 'node' failed: ${NATIVE_PACKAGE} loaded but registered no 'tensorflow' backend with this copy of ` +
        `@tensorflow/tfjs-core; it probably depends on another tfjs-core version (npm dedupe may help).`,
    );
  }
}

/**
 * tf.setBackend resolves false (it does not throw) when a backend fails to start, logs the cause through
 * console.warn and silently leaves tfjs on another backend. Capture those lines so the error can carry them.
 */
async function select(name: TfjsBackendName): Promise<void> {
  const tfjsName = TFJS_NAME[name];
  // getBackend() names a backend even after it failed to start; findBackend() is null unless it runs.
  if (tf.getBackend() === tfjsName && tf.findBackend(tfjsName) != null) return;
  const captured: string[] = [];
  const originalWarn = console.warn;
  console.warn = (...args: unknown[]) => {
    captured.push(args.map(String).join(' '));
  };
  let ok = false;
  let thrown: unknown = null;
  try {
    ok = await tf.setBackend(tfjsName);
  } catch (err) {
    thrown = err;
  } finally {
    console.warn = originalWarn;
  }
  if (ok && tf.getBackend() === tfjsName) {
    for (const line of captured) originalWarn(line);
    if (name === 'cpu') {
      // The cpu backend prints a banner urging tfjs-node on its first tensor; initBackend's own warning
      // (when it falls back) says what matters here.
      const cpu = tf.findBackend('cpu') as { firstUse?: boolean } | null;
      if (cpu && typeof cpu.firstUse === 'boolean') cpu.firstUse = false;
    }
    return;
  }
  // tfjs logs "Initialization of backend X failed" and then the cause (Emscripten repeats it): keep the cause.
  const causes = [...new Set(captured.map((l) => l.split('\n')[0].trim()))].filter((l) => l && !/^Initialization of backend/.test(l));
  const why = thrown !== null ? reason(thrown) : (causes[0] ?? 'tf.setBackend returned false');
  const hint =
    name === 'wasm' ? ' Check that node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm exist and are readable (or that setWasmPaths points at them).' : '';
  throw new BackendError(`Backend '${name}' failed to start: ${why}.${hint}`);
}

function reason(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0];
  if (err && typeof err === 'object' && 'message' in err) return String((err as { message: unknown }).message);
  return String(err);
}

/** The tfjs backend initBackend last started in this thread, or null before the first call. */
export function activeBackend(): BackendName | null {
  return active;
}

/**
 * The numerics identity of `name` as it runs in this thread (./numerics-identity.ts): a constant for wasm, fused
 * and cpu, which give the same bytes on every machine; for node what its bytes depend on, read from the loaded
 * library and the environment, e.g. `node: tf 2.21.0, intra-op 1, onednn on, isa avx512_core_bf16, cpu AMD EPYC`.
 */
export function numericsIdentity(name: BackendName): string {
  if (name !== 'node') return portableNumerics(name);
  const native = tf.findBackend(TFJS_NAME.node) as { binding?: { TF_Version?: string } } | null;
  if (active !== 'node' || !native?.binding?.TF_Version) {
    throw new BackendError(`numericsIdentity('node') needs tfjs-node running in this thread (initBackend('node') first).`);
  }
  return nativeNumerics(native.binding.TF_Version);
}

/**
 * Whether more than one thread of this process may load tfjs-node: true for a binding that `npm run native:install`
 * built (N-API registration by symbol, linked -z nodelete; tested with 4 threads), false for any other (the
 * prebuilt addon tfjs-node downloads is untested here, and older ones failed with "Module did not self-register").
 */
export function nativeThreadsShareProcess(): boolean {
  try {
    const pkg = path.dirname(createRequire(import.meta.url).resolve(`${NATIVE_PACKAGE}/package.json`));
    const lib = path.join(pkg, 'lib');
    return fs.readdirSync(lib).some((dir) => fs.existsSync(path.join(lib, dir, 'native-install.json')));
  } catch {
    return false;
  }
}

/** numericsIdentity of `name` for a process that does not compute (a Redis coordinator): starts node in this thread if needed. */
export async function engineNumerics(name: BackendName): Promise<string> {
  if (name === 'node') await initBackend('node');
  return numericsIdentity(name);
}

/** A short human description for logs and the start-up banner. */
export function describeBackend(name: BackendName): string {
  switch (name) {
    case 'node':
      return 'node (native TensorFlow via tfjs-node, own thread pool)';
    case 'wasm':
      return `wasm (XNNPACK, ${wasmSimd === false ? 'no SIMD' : wasmSimd ? 'SIMD' : 'SIMD if available'}, 1 thread)`;
    case 'cpu':
      return 'cpu (pure JavaScript, slow: last resort)';
    case 'fused':
      return 'fused (the model in one WebAssembly SIMD module, 1 thread)';
  }
}
