import type { ParameterRange } from './optimizer/optimizer.ts';

/**
 * SGD with momentum as torch.optim.SGD (dampening 0, optionally Nesterov), with parameter groups: ranges of the
 * flat vector that share a learning rate and a weight decay, as torch's param_groups. Entries in no group are
 * not touched (frozen tensors, batch norm's running statistics) and neither is their momentum buffer, as torch
 * skips a parameter whose .grad is None.
 */
export interface SgdOptions {
  /** Momentum μ (0: plain SGD, no buffer). */
  readonly momentum: number;
  /** Nesterov's variant: the step is d + μ·b instead of b. */
  readonly nesterov: boolean;
  readonly groups: readonly ParameterGroup[];
}

/** One of torch's param_groups: where, and at which learning rate and (coupled) weight decay. */
export interface ParameterGroup {
  /** For messages (e.g. 'norm-biases'). */
  readonly name: string;
  /** Sorted, disjoint [start, end) ranges of the flat vector. */
  readonly ranges: readonly ParameterRange[];
  /** This step's learning rate (the group's base rate × the schedule's factor, as LambdaLR sets group['lr']). */
  readonly lr: number;
  /** Coupled weight decay: added to the gradient as weightDecay·p before the momentum (torch's weight_decay). */
  readonly weightDecay: number;
}

/**
 * SGD's state: the momentum buffer (one float per entry of the flat vector) and which entries have one yet
 * (torch creates a parameter's buffer on its first step as a copy of d_p; a group frozen so far has none). A
 * checkpoint holds all three: `momentum`, `started` and `step`.
 */
export interface SgdState {
  readonly momentum: Float32Array;
  /** Sorted, disjoint, merged ranges whose buffer exists. */
  started: ParameterRange[];
  /** Steps taken (calls of sgdStep). */
  step: number;
}

export function newSgdState(parameterCount: number): SgdState {
  return { momentum: new Float32Array(parameterCount), started: [], step: 0 };
}

/** The float32 constants of one group's step, as torch passes its Python floats (alpha, weight_decay) to float32 kernels. */
export interface SgdConstants {
  readonly lr: number;
  readonly weightDecay: number;
  readonly momentum: number;
}

export function sgdConstants(group: ParameterGroup, momentum: number): SgdConstants {
  return { lr: Math.fround(group.lr), weightDecay: Math.fround(group.weightDecay), momentum: Math.fround(momentum) };
}

/**
 * Checks the groups against a vector of `n` entries: finite rates, every range inside [0, n), sorted within its
 * group, and no entry in two groups. Throws RangeError naming the group.
 */
export function checkParameterGroups(groups: readonly ParameterGroup[], n: number): void {
  const all: [number, number, string][] = [];
  for (const g of groups) {
    if (!Number.isFinite(g.lr) || !Number.isFinite(g.weightDecay)) {
      throw new RangeError(`Parameter group '${g.name}' has lr ${g.lr} and weight decay ${g.weightDecay}; both must be finite.`);
    }
    let from = 0;
    for (const [start, end] of g.ranges) {
      if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= from && start <= end && end <= n)) {
        throw new RangeError(`Parameter group '${g.name}': range [${start}, ${end}) is not sorted, or outside the ${n} parameters.`);
      }
      from = end;
      if (start < end) all.push([start, end, g.name]);
    }
  }
  all.sort((a, b) => a[0] - b[0]);
  for (let k = 1; k < all.length; k++) {
    if (all[k][0] < all[k - 1][1]) {
      throw new RangeError(`Parameter groups '${all[k - 1][2]}' and '${all[k][2]}' overlap at entry ${all[k][0]}.`);
    }
  }
}

/**
 * Cuts [start, end) into the parts whose buffer already exists (first = false) and those that get theirs now
 * (first = true), in order.
 */
export function splitByStarted(started: readonly ParameterRange[], start: number, end: number): { start: number; end: number; first: boolean }[] {
  const parts: { start: number; end: number; first: boolean }[] = [];
  let at = start;
  for (const [a, b] of started) {
    if (b <= at) continue;
    if (a >= end) break;
    if (a > at) parts.push({ start: at, end: a, first: true });
    const stop = Math.min(b, end);
    parts.push({ start: Math.max(a, at), end: stop, first: false });
    at = stop;
  }
  if (at < end) parts.push({ start: at, end, first: true });
  return parts;
}

/** `started` ∪ `ranges`, sorted and merged. */
export function mergeRanges(started: readonly ParameterRange[], ranges: readonly ParameterRange[]): ParameterRange[] {
  const all = [...started, ...ranges].filter(([a, b]) => a < b).sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const [a, b] of all) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/**
 * One SGD step in place, over the groups' ranges, in float32: every operation rounded to float32 (Math.fround),
 * in torch's order, per element i (single-tensor torch.optim.SGD, dampening 0):
 *   d ← g + wd·p (when wd ≠ 0);  b ← d (first step) or μ·b + d;  d ← d + μ·b (Nesterov) or b;  p ← p − lr·d
 * with wd, μ and lr rounded to float32 as torch rounds its Python floats. This is the reference of the
 * coordinator's WebAssembly kernel (Optimizer.sgdStep), which computes the same bits. `gradient` is the
 * reduced gradient (of the batch's mean or summed loss, whichever the run uses).
 */
export function sgdStep(params: Float32Array, gradient: Float32Array, state: SgdState, options: SgdOptions): void {
  checkParameterGroups(options.groups, params.length);
  const f = Math.fround;
  const nesterov = options.nesterov;
  for (const group of options.groups) {
    const { lr, weightDecay: wd, momentum: mu } = sgdConstants(group, options.momentum);
    const b = state.momentum;
    for (const [start, end] of group.ranges) {
      for (const part of splitByStarted(state.started, start, end)) {
        for (let i = part.start; i < part.end; i++) {
          const p = params[i];
          let d = gradient[i];
          if (wd !== 0) d = f(d + f(wd * p));
          if (mu !== 0) {
            const bi = part.first ? d : f(f(mu * b[i]) + d);
            b[i] = bi;
            d = nesterov ? f(d + f(mu * bi)) : bi;
          }
          params[i] = f(p - f(lr * d));
        }
      }
    }
    if (mu !== 0) state.started = mergeRanges(state.started, group.ranges);
  }
  state.step += 1;
}
