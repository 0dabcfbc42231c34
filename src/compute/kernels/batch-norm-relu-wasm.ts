// Loader and wrapper of batch-norm-relu.wasm: training-mode relu(batchNorm(x)) and its gradient over NHWC
// values (source: ./assembly/batch-norm-relu.ts, built by `npm run build:wasm:batch-norm`).
import { BackendError } from '../../errors/index.ts';
import { WasmModule } from '../../wasm/wasm-module.ts';

interface Exports {
  memory: { buffer: ArrayBuffer };
  reserve(bytes: number): number;
  forward(
    x: number, m: number, C: number, gamma: number, beta: number, epsilon: number,
    y: number, xhat: number, mean: number, variance: number, invStd: number,
  ): void;
  backward(
    dy: number, y: number, xhat: number, m: number, C: number, gamma: number, invStd: number,
    dx: number, dGamma: number, dBeta: number, scratch: number,
  ): void;
}

export const BATCH_NORM_RELU_WASM_URL = new URL('./batch-norm-relu.wasm', import.meta.url);
const MODULE = new WasmModule<Exports>(BATCH_NORM_RELU_WASM_URL, (message) => new BackendError(`Batch norm kernel: ${message}`));

export interface BatchNormReluForward {
  /** relu(γ·x̂ + β), m·C values. */
  readonly y: Float32Array;
  /** (x − mean)·invStd, m·C values (kept for the backward pass). */
  readonly xhat: Float32Array;
  /** Per channel: the batch mean, the biased batch variance and 1/√(variance + ε). */
  readonly mean: Float64Array;
  readonly variance: Float64Array;
  readonly invStd: Float64Array;
}

export interface BatchNormReluBackward {
  readonly dx: Float32Array;
  readonly dGamma: Float64Array;
  readonly dBeta: Float64Array;
}

const align = (bytes: number) => (bytes + 15) & ~15;

/** Carves consecutive 16-byte-aligned arrays out of the module's scratch area. */
class Layout {
  private used = 0;
  readonly parts: { offset: number; bytes: number }[] = [];
  add(bytes: number): number {
    this.parts.push({ offset: this.used, bytes });
    this.used += align(bytes);
    return this.parts.length - 1;
  }
  get bytes(): number {
    return this.used;
  }
}

/**
 * One instance of the module (own memory), made on first use in each thread. Results are a pure function of
 * the inputs and bit-identical to f64 JavaScript arithmetic in the same order (see the source's header).
 */
export class BatchNormReluKernel {
  private static perThread: BatchNormReluKernel | null = null;

  static instance(): BatchNormReluKernel {
    return (BatchNormReluKernel.perThread ??= new BatchNormReluKernel(MODULE.instantiate()));
  }

  private constructor(private readonly wasm: Exports) {}

  private reserve(layout: Layout): number {
    const base = this.wasm.reserve(layout.bytes);
    if (base === 0) throw new BackendError(`Batch norm kernel: cannot grow WebAssembly memory to ${layout.bytes} bytes.`);
    return base;
  }

  /** x holds m rows of C channels (NHWC flattened); gamma and beta hold C values. */
  forward(x: Float32Array, C: number, gamma: Float32Array, beta: Float32Array, epsilon: number): BatchNormReluForward {
    const n = x.length;
    const m = n / C;
    if (!Number.isInteger(m) || gamma.length !== C || beta.length !== C) {
      throw new RangeError(`Batch norm: ${n} values, ${gamma.length} gammas and ${beta.length} betas do not make rows of ${C} channels.`);
    }
    const L = new Layout();
    const [iMean, iVar, iInv, iGamma, iBeta, iX, iY, iXhat] = [
      L.add(8 * C), L.add(8 * C), L.add(8 * C), L.add(4 * C), L.add(4 * C), L.add(4 * n), L.add(4 * n), L.add(4 * n),
    ];
    const base = this.reserve(L);
    const at = (i: number) => base + L.parts[i].offset;
    const buf = this.wasm.memory.buffer;
    new Float32Array(buf, at(iGamma), C).set(gamma);
    new Float32Array(buf, at(iBeta), C).set(beta);
    new Float32Array(buf, at(iX), n).set(x);
    this.wasm.forward(at(iX), m, C, at(iGamma), at(iBeta), epsilon, at(iY), at(iXhat), at(iMean), at(iVar), at(iInv));
    return {
      y: new Float32Array(buf, at(iY), n).slice(),
      xhat: new Float32Array(buf, at(iXhat), n).slice(),
      mean: new Float64Array(buf, at(iMean), C).slice(),
      variance: new Float64Array(buf, at(iVar), C).slice(),
      invStd: new Float64Array(buf, at(iInv), C).slice(),
    };
  }

  /** The gradient for x, γ and β given dy and the forward pass's y, x̂ and invStd. */
  backward(dy: Float32Array, forward: BatchNormReluForward, gamma: Float32Array): BatchNormReluBackward {
    const { y, xhat, invStd } = forward;
    const n = dy.length;
    const C = invStd.length;
    if (y.length !== n || xhat.length !== n || gamma.length !== C) {
      throw new RangeError(`Batch norm backward: dy has ${n} values, y ${y.length}, x̂ ${xhat.length}; ${C} channels, ${gamma.length} gammas.`);
    }
    const L = new Layout();
    const [iInv, iDGamma, iDBeta, iScratch, iGamma, iDy, iY, iXhat, iDx] = [
      L.add(8 * C), L.add(8 * C), L.add(8 * C), L.add(24 * C), L.add(4 * C), L.add(4 * n), L.add(4 * n), L.add(4 * n), L.add(4 * n),
    ];
    const base = this.reserve(L);
    const at = (i: number) => base + L.parts[i].offset;
    const buf = this.wasm.memory.buffer;
    new Float64Array(buf, at(iInv), C).set(invStd);
    new Float32Array(buf, at(iGamma), C).set(gamma);
    new Float32Array(buf, at(iDy), n).set(dy);
    new Float32Array(buf, at(iY), n).set(y);
    new Float32Array(buf, at(iXhat), n).set(xhat);
    this.wasm.backward(at(iDy), at(iY), at(iXhat), n / C, C, at(iGamma), at(iInv), at(iDx), at(iDGamma), at(iDBeta), at(iScratch));
    return {
      dx: new Float32Array(buf, at(iDx), n).slice(),
      dGamma: new Float64Array(buf, at(iDGamma), C).slice(),
      dBeta: new Float64Array(buf, at(iDBeta), C).slice(),
    };
  }
}
