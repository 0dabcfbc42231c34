import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TrainerError } from '../errors/index.ts';

// The project compiles without the DOM lib, where TypeScript declares WebAssembly: the little used here.
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/**
 * One of the project's own WebAssembly modules (built from AssemblyScript by `npm run build:wasm`, committed):
 * compiled once per thread on first use (synchronously: Node allows it for any size), instantiated as often as
 * wanted, each instance with its own memory. `fail` turns a load problem into the caller's error class.
 */
export class WasmModule<Exports> {
  private compiled: object | null = null;

  constructor(
    readonly url: URL,
    private readonly fail: (message: string) => TrainerError = (message) => new TrainerError(message),
  ) {}

  instantiate(): Exports {
    return new WA.Instance(this.module(), {}).exports as Exports;
  }

  private module(): object {
    if (this.compiled) return this.compiled;
    const file = fileURLToPath(this.url);
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      throw this.fail(`Cannot read ${file} (${(err as Error).message}). Run npm run build:wasm.`);
    }
    try {
      this.compiled = new WA.Module(bytes);
    } catch (err) {
      throw this.fail(`This runtime cannot compile ${basename(file)} (${(err as Error).message}); it needs WebAssembly SIMD (Node ≥ 16.4).`);
    }
    return this.compiled;
  }
}
