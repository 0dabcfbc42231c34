import test from 'ava';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { BACKEND_CHOICES, describeBackend, initBackend, type BackendChoice } from '../src/compute/backend.ts';
import { conv2dBackpropFilterWasmConfig } from '../src/compute/kernels/conv2d-backprop-filter-wasm.ts';
import { BackendError } from '../src/errors/index.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const backendModule = new URL('../src/compute/backend.ts', import.meta.url).href;

/** Whether @tensorflow/tfjs-node is installed here (it normally is not: it needs a libtensorflow download). */
const nativeInstalled = (() => {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
})();

/**
 * Runs `body` (an async function body with initBackend, tf and warnings in scope) in a fresh Node process,
 * so it sees a tfjs engine no earlier test has touched. Returns what the body returns, through JSON.
 */
function fresh(body: string): Promise<any> {
  const code = `
    import * as tf from '@tensorflow/tfjs-core';
    import { initBackend } from ${JSON.stringify(backendModule)};
    const warnings = [];
    const result = await (async () => { ${body} })();
    process.stdout.write('\\n@@' + JSON.stringify(result));`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: root, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`child failed: ${err.message}\n${stderr}`));
      const at = stdout.lastIndexOf('\n@@');
      if (at < 0) return reject(new Error(`child printed no result:\n${stdout}\n${stderr}`));
      resolve(JSON.parse(stdout.slice(at + 3)));
    });
  });
}

test('auto picks wasm when tfjs-node is absent, quietly, and wasm can train', async (t) => {
  const r = await fresh(`
    const name = await initBackend('auto', { warn: (m) => warnings.push(m) });
    const g = tf.tidy(() => tf.grad((w) => tf.sum(tf.conv2d(tf.ones([2, 5, 5, 1]), w, 1, 'valid')))(tf.ones([3, 3, 1, 1])).dataSync()[0]);
    return { name, tfjs: tf.getBackend(), warnings, g };`);
  if (nativeInstalled) {
    t.is(r.name, 'node');
  } else {
    t.is(r.name, 'wasm');
    t.is(r.tfjs, 'wasm');
    t.deepEqual(r.warnings, [], 'a missing optional package is not worth a warning');
  }
  t.is(r.g, 18, 'the filter gradient of Σ conv(ones) is the count of output pixels × batch');
});

test('auto with allowNative: false never tries tfjs-node', async (t) => {
  const r = await fresh(`return { name: await initBackend('auto', { allowNative: false, warn: (m) => warnings.push(m) }), warnings };`);
  t.is(r.name, 'wasm');
  t.deepEqual(r.warnings, []);
});

test('a wasm backend that cannot start: explicit choice throws, auto falls back to cpu with a warning', async (t) => {
  const r = await fresh(`
    const { setWasmPaths } = await import('@tensorflow/tfjs-backend-wasm');
    setWasmPaths('/nonexistent-wasm-dir/');
    let error = null;
    try { await initBackend('wasm'); } catch (e) { error = { name: e.name, message: e.message }; }
    const name = await initBackend('auto', { allowNative: false, warn: (m) => warnings.push(m) });
    const sum = tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(2)).dataSync()[0]);
    return { error, name, tfjs: tf.getBackend(), warnings, sum };`);
  t.is(r.error?.name, 'BackendError');
  t.regex(r.error.message, /Backend 'wasm' failed/);
  t.regex(r.error.message, /nonexistent-wasm-dir/, 'the cause is in the message');
  t.regex(r.error.message, /--backend cpu/, 'and what to do');
  t.is(r.name, 'cpu');
  t.is(r.tfjs, 'cpu');
  t.is(r.sum, 3);
  t.is(r.warnings.length, 1);
  t.regex(r.warnings[0], /cpu/);
  t.regex(r.warnings[0], /wasm: .*nonexistent-wasm-dir/);
});

// The remaining tests share this thread's engine: serial.

test.serial('explicit node fails with a BackendError naming tfjs-node when it is not installed', async (t) => {
  if (nativeInstalled) {
    t.is(await initBackend('node'), 'node');
    return;
  }
  const err = await t.throwsAsync(initBackend('node'), { instanceOf: BackendError });
  t.regex(err!.message, /Backend 'node' failed/);
  t.regex(err!.message, /@tensorflow\/tfjs-node is not installed/);
  t.regex(err!.message, /--backend wasm/);
});

test.serial('wasm: registers the Conv2DBackpropFilter kernel; a second call changes nothing', async (t) => {
  t.is(await initBackend('wasm'), 'wasm');
  t.is(tf.getBackend(), 'wasm');
  t.is(tf.getKernel('Conv2DBackpropFilter', 'wasm'), conv2dBackpropFilterWasmConfig);

  const warned: string[] = [];
  const original = console.warn;
  console.warn = (...args: unknown[]) => void warned.push(args.join(' '));
  try {
    t.is(await initBackend('wasm'), 'wasm');
    t.is(await initBackend('auto'), 'wasm', 'auto keeps the backend already running');
    const both = await Promise.all([initBackend('wasm'), initBackend('auto', { allowNative: false })]);
    t.deepEqual(both, ['wasm', 'wasm']);
  } finally {
    console.warn = original;
  }
  t.deepEqual(warned, [], 'no "already registered" warnings');
  t.is(tf.getKernel('Conv2DBackpropFilter', 'wasm'), conv2dBackpropFilterWasmConfig);
});

test.serial('explicit choices switch the thread between backends', async (t) => {
  t.is(await initBackend('cpu'), 'cpu');
  t.is(tf.getBackend(), 'cpu');
  t.is(await initBackend('wasm'), 'wasm');
  t.is(tf.getBackend(), 'wasm');
  // Something else switched tfjs behind initBackend's back: the next call puts it back.
  await tf.setBackend('cpu');
  t.is(await initBackend('wasm'), 'wasm');
  t.is(tf.getBackend(), 'wasm');
});

test.serial('an unknown choice is a BackendError listing the valid ones', async (t) => {
  const err = await t.throwsAsync(initBackend('gpu' as BackendChoice), { instanceOf: BackendError });
  t.regex(err!.message, /auto, node, wasm, cpu, fused/);
});

test('describeBackend gives a short line per backend', (t) => {
  t.deepEqual([...BACKEND_CHOICES], ['auto', 'node', 'wasm', 'cpu', 'fused']);
  for (const name of ['node', 'wasm', 'cpu', 'fused'] as const) {
    const text = describeBackend(name);
    t.true(text.startsWith(name), text);
    t.true(text.length < 80, text);
  }
});
