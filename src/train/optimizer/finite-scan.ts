// firstNonFinite(values): the NaN/±Infinity scan of every shard result (validateShardResult), in WebAssembly
// SIMD (optimizer.wasm's firstNonFinite, in an instance of its own per thread): ~5x faster than a JS loop over
// Number.isFinite, including the copy into the module.
import { loadOptimizerModule, type OptimizerExports } from './optimizer.ts';

let scanner: { x: OptimizerExports; capacity: number; at: number } | null = null;

/** The index of the first NaN or ±Infinity in `values`, or -1 when every value is finite. */
export function firstNonFinite(values: Float32Array): number {
  const n = values.length;
  if (n === 0) return -1;
  if (!scanner || scanner.capacity < n) {
    const x = loadOptimizerModule();
    const capacity = Math.max(n, scanner?.capacity ?? 0);
    const at = x.scanReserve(capacity);
    if (at === 0) throw new RangeError(`optimizer.wasm cannot hold ${capacity} floats to scan.`);
    scanner = { x, capacity, at };
  }
  const { x, at } = scanner;
  new Float32Array(x.memory.buffer, at, n).set(values);
  return x.firstNonFinite(at, n);
}
