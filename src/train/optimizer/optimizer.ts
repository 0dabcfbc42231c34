// The coordinator's per-step arithmetic: the shards' gradients summed in shard order and averaged (or summed),
// then Adam/AdamW or SGD with momentum and parameter groups, in the WebAssembly SIMD module optimizer.wasm
// (source: ./assembly/index.ts; rebuild: npm run build:wasm). The weights, Adam's moments and SGD's momentum
// buffer live in the module's memory for the whole run, so a step copies only the shard results in, and not even
// those when a pool wrote them straight into `resultSlots`; `weights`, `state.m`, `state.v` and `sgd.momentum`
// are views of that memory (valid as long as the Optimizer, and updated in place by every step). Bit for bit
// the same as the JS references, adamStep in ../adam.ts and sgdStep in ../sgd.ts.
import { ShardResultError } from '../../errors/index.ts';
import { WasmModule } from '../../wasm/wasm-module.ts';
import { type AdamOptions, type AdamState, adamConstants } from '../adam.ts';
import { checkParameterGroups, mergeRanges, sgdConstants, type SgdOptions, type SgdState, splitByStarted } from '../sgd.ts';

export interface OptimizerExports {
  memory: { buffer: ArrayBuffer };
  init(n: number, shardSlots: number): number;
  weightsPtr(): number;
  mPtr(): number;
  vPtr(): number;
  gradPtr(): number;
  momentumPtr(): number;
  slotPtr(k: number): number;
  reduce(shards: number, batch: number): number;
  adam(
    start: number, end: number, stepSize: number, sqrtBiasCorrection2: number, beta1: number, oneMinusBeta1: number,
    beta2: number, oneMinusBeta2: number, eps: number, decay: number,
  ): void;
  sgd(start: number, end: number, lr: number, weightDecay: number, momentum: number, nesterov: number, first: number): void;
  divideGradient(start: number, end: number, divisor: number): void;
  scanReserve(n: number): number;
  firstNonFinite(at: number, n: number): number;
}

export const OPTIMIZER_WASM_URL = new URL('./optimizer.wasm', import.meta.url);

const OPTIMIZER_WASM = new WasmModule<OptimizerExports>(OPTIMIZER_WASM_URL);

/** A fresh instance of optimizer.wasm (own memory; the compiled module is shared within the thread). */
export function loadOptimizerModule(): OptimizerExports {
  return OPTIMIZER_WASM.instantiate();
}

export interface OptimizerInit {
  /** Starting weights (copied in). */
  readonly weights: Float32Array;
  /** Adam's state to continue from (copied in); a fresh one when absent. */
  readonly adam?: AdamState;
  /** SGD's state to continue from (copied in); a fresh one (no buffer yet) when absent. */
  readonly sgd?: SgdState;
  /** The most shard results one step sums (the run's shard count). */
  readonly shards: number;
}

/** A half-open range [start, end) of the flat parameter vector. */
export type ParameterRange = readonly [start: number, end: number];

/**
 * How the shard results are reduced to the step's gradient: 'mean' divides the sum by the batch size (the
 * gradient of the batch's mean loss, PyTorch's default reduction); 'sum' keeps the sum (the gradient of the
 * summed loss, as airbench's `loss_fn(outputs, labels).sum()`).
 */
export type LossReduction = 'mean' | 'sum';
export const LOSS_REDUCTIONS: readonly LossReduction[] = ['mean', 'sum'];

export class Optimizer {
  /** The weights: a view of the module's memory, updated in place by adamStep(). */
  readonly weights: Float32Array;
  /** Adam's moments (views of the module's memory) and step count. */
  readonly state: AdamState;
  /** SGD's momentum buffer (a view of the module's memory), the ranges that have one yet, and its step count. */
  readonly sgd: SgdState;
  /** The last averaged gradient (a view; written by averageShards()). */
  readonly gradient: Float32Array;
  /**
   * Where shard k's result is summed from: a view of the module's memory that holds a whole shard result
   * (parameterCount + 2 floats). A pool may compute or copy result k straight into it (WorkerPool
   * computeGradients' `into`); averageShards then has nothing to copy.
   */
  readonly resultSlots: readonly Float32Array[];
  readonly shards: number;
  private readonly x: OptimizerExports;

  private constructor(x: OptimizerExports, n: number, shards: number) {
    this.x = x;
    this.shards = shards;
    const f32 = (ptr: number) => new Float32Array(x.memory.buffer, ptr, n);
    this.weights = f32(x.weightsPtr());
    this.state = { m: f32(x.mPtr()), v: f32(x.vPtr()), step: 0 };
    this.sgd = { momentum: f32(x.momentumPtr()), started: [], step: 0 };
    this.gradient = f32(x.gradPtr());
    this.resultSlots = Array.from({ length: shards }, (_, k) => new Float32Array(x.memory.buffer, x.slotPtr(k), n + 2));
  }

  static create(init: OptimizerInit): Optimizer {
    const n = init.weights.length;
    if (!Number.isSafeInteger(init.shards) || init.shards < 1) throw new RangeError(`Optimizer needs at least one shard, got ${init.shards}.`);
    if (n < 1) throw new RangeError('Optimizer needs at least one parameter.');
    if (init.adam && (init.adam.m.length !== n || init.adam.v.length !== n)) {
      throw new RangeError(`Adam's state holds ${init.adam.m.length}/${init.adam.v.length} moments for ${n} weights.`);
    }
    if (init.sgd && init.sgd.momentum.length !== n) {
      throw new RangeError(`SGD's state holds ${init.sgd.momentum.length} momentum values for ${n} weights.`);
    }
    if (init.sgd) checkParameterGroups([{ name: 'started', ranges: init.sgd.started, lr: 0, weightDecay: 0 }], n);
    const x = loadOptimizerModule();
    if (x.init(n, init.shards) !== 1) throw new RangeError(`optimizer.wasm cannot hold ${n} parameters and ${init.shards} shards.`);
    const optimizer = new Optimizer(x, n, init.shards);
    optimizer.weights.set(init.weights);
    if (init.adam) {
      optimizer.state.m.set(init.adam.m);
      optimizer.state.v.set(init.adam.v);
      optimizer.state.step = init.adam.step;
    }
    if (init.sgd) {
      optimizer.sgd.momentum.set(init.sgd.momentum);
      optimizer.sgd.started = mergeRanges([], init.sgd.started);
      optimizer.sgd.step = init.sgd.step;
    }
    return optimizer;
  }

  /**
   * gradient = (results[0] + results[1] + …) / batchSize, element by element in the order given (shard order),
   * over the first weights.length floats of each result (a shard result's loss sum and correct count after them
   * are ignored). Throws ShardResultError naming the result and position when one holds NaN or ±Infinity — the
   * check costs nothing extra: it is one pass over the sum. A result that is `resultSlots[k]` itself, at its own
   * position k, is summed where it is; any other is copied into its slot first.
   *
   * With reduction 'sum' the gradient is the plain sum (÷ 1, the gradient of the summed loss), except in the
   * `statistics` ranges (batch norm's running statistics, whose shard values are n_shard × the batch value):
   * those are divided by batchSize all the same, so they hold the image-weighted mean either way — the very
   * bits 'mean' gives there.
   */
  averageShards(results: readonly Float32Array[], batchSize: number, reduction: LossReduction = 'mean', statistics: readonly ParameterRange[] = []): void {
    const n = this.weights.length;
    if (results.length < 1 || results.length > this.shards) {
      throw new RangeError(`averageShards() takes 1 to ${this.shards} results, got ${results.length}.`);
    }
    results.forEach((result, k) => {
      if (result.length < n) throw new ShardResultError(`Shard result ${k} has ${result.length} values, fewer than the ${n} weights; discarded.`);
      if (result === this.resultSlots[k]) return;
      // Copying another slot in would overwrite a result not yet summed.
      if (this.resultSlots.includes(result)) throw new RangeError(`Shard result ${k} is the Optimizer's slot of another shard.`);
      this.resultSlots[k].set(result.length === n ? result : result.subarray(0, n));
    });
    if (reduction !== 'mean' && reduction !== 'sum') throw new RangeError(`Loss reduction must be 'mean' or 'sum', got '${String(reduction)}'.`);
    if (reduction === 'sum') checkParameterGroups([{ name: 'statistics', ranges: statistics, lr: 0, weightDecay: 0 }], n);
    if (this.x.reduce(results.length, reduction === 'sum' ? 1 : batchSize) === 1) {
      if (reduction === 'sum') for (const [start, end] of statistics) this.x.divideGradient(start, end, batchSize);
      return;
    }
    for (let k = 0; k < results.length; k++) {
      const result = results[k];
      for (let i = 0; i < n; i++) {
        if (!Number.isFinite(result[i])) throw new ShardResultError(`Shard result ${k} holds ${result[i]} at position ${i}; discarded.`);
      }
    }
    const i = this.gradient.findIndex((g) => !Number.isFinite(g));
    throw new ShardResultError(`The summed gradient overflows float32 at position ${i}; the step is not applied.`);
  }

  /**
   * One Adam/AdamW step on the weights from the averaged gradient, exactly adamStep() of ../adam.ts. Entries in
   * `skip` (sorted, non-overlapping [start, end) ranges: non-trainable entries such as batch norm's running
   * statistics) are left as they are, their moments too. The step count advances once.
   */
  adamStep(options: AdamOptions, skip: readonly ParameterRange[] = []): void {
    const n = this.weights.length;
    let from = 0;
    const ranges: [number, number][] = [];
    for (const [start, end] of skip) {
      if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= from && start <= end && end <= n)) {
        throw new RangeError(`Skipped range [${start}, ${end}) is not sorted, or outside the ${n} parameters.`);
      }
      if (from < start) ranges.push([from, start]);
      from = end;
    }
    if (from < n) ranges.push([from, n]);
    this.state.step += 1;
    const c = adamConstants(this.state.step, options);
    for (const [start, end] of ranges) {
      this.x.adam(start, end, c.stepSize, c.sqrtBiasCorrection2, c.beta1, c.oneMinusBeta1, c.beta2, c.oneMinusBeta2, c.eps, c.decay);
    }
  }

  /**
   * One step of SGD with momentum (torch.optim.SGD, dampening 0, Nesterov when asked) from the reduced
   * gradient, exactly sgdStep() of ../sgd.ts: each group's ranges at its own learning rate and weight decay;
   * entries in no group (frozen tensors, running statistics) are left alone, their momentum too. A range's
   * buffer starts as its first d_p, as torch's does. The step count advances once.
   */
  sgdStep(options: SgdOptions): void {
    const n = this.weights.length;
    checkParameterGroups(options.groups, n);
    if (!Number.isFinite(options.momentum)) throw new RangeError(`SGD momentum must be finite, got ${options.momentum}.`);
    for (const group of options.groups) {
      const c = sgdConstants(group, options.momentum);
      for (const [start, end] of group.ranges) {
        for (const part of splitByStarted(this.sgd.started, start, end)) {
          this.x.sgd(part.start, part.end, c.lr, c.weightDecay, c.momentum, options.nesterov ? 1 : 0, part.first ? 1 : 0);
        }
      }
      if (c.momentum !== 0) this.sgd.started = mergeRanges(this.sgd.started, group.ranges);
    }
    this.sgd.step += 1;
  }
}
