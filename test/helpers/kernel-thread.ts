/**
 * Runs one of the project's Winograd kernels in a fresh worker thread (its own module instance and memory) and
 * returns the output, so tests can check that another thread computes the same bytes.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

export type ThreadCall =
  | { kernel: 'correlate'; a: Float32Array; aShape: number[]; top: number; left: number; filter: Float32Array; mode: 'forward' | 'backprop-input'; oh: number; ow: number; cout: number; m: 2 | 4 }
  | { kernel: 'filter-grad'; x: Float32Array; xShape: number[]; dy: Float32Array; dyShape: number[]; top: number; left: number; m: 2 | 4 };

export function runInThread(call: ThreadCall): Promise<Float32Array> {
  const entry = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const worker = new Worker(entry, { eval: true, workerData: call });
  return new Promise((resolve, reject) => {
    worker.once('message', (out: Float32Array) => {
      resolve(out);
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the kernel thread exited with code ${code} before answering`)));
  });
}

async function serve(call: ThreadCall): Promise<void> {
  if (call.kernel === 'correlate') {
    const { winogradCorrelateInto } = await import('../../src/compute/kernels/winograd-conv2d-wasm.ts');
    const out = new Float32Array(call.aShape[0] * call.oh * call.ow * call.cout);
    winogradCorrelateInto(call.a, call.aShape, call.top, call.left, call.filter, call.mode, call.oh, call.ow, call.cout, out, call.m);
    parentPort!.postMessage(out);
  } else {
    const { winogradBackpropFilterInto } = await import('../../src/compute/kernels/winograd-conv2d-backprop-filter-wasm.ts');
    const out = new Float32Array(9 * call.xShape[3] * call.dyShape[3]);
    winogradBackpropFilterInto(call.x, call.xShape, call.dy, call.dyShape, call.top, call.left, out, call.m);
    parentPort!.postMessage(out);
  }
}

if (!isMainThread && workerData && (workerData as ThreadCall).kernel) void serve(workerData as ThreadCall);
