/** Adam's hyper-parameters; PyTorch's defaults unless the run says otherwise. */
export interface AdamOptions {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Decoupled weight decay as torch.optim.AdamW (0: plain Adam, the tutorial's optimizer). */
  readonly weightDecay?: number;
}

export const ADAM_DEFAULTS: Pick<AdamOptions, 'beta1' | 'beta2' | 'eps'> = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

/** Adam's state: first and second moments, one float per parameter, and the number of steps taken. */
export interface AdamState {
  readonly m: Float32Array;
  readonly v: Float32Array;
  step: number;
}

export function newAdamState(parameterCount: number): AdamState {
  return { m: new Float32Array(parameterCount), v: new Float32Array(parameterCount), step: 0 };
}

/**
 * One Adam step on the flat parameter vector, in place, exactly as torch.optim.Adam (bias-corrected,
 * eps added after the square root of the corrected second moment), or AdamW when weightDecay > 0. Arithmetic is in float64 per element and
 * stored as float32, so it is the same on every machine. `gradient` is the batch-mean gradient.
 */
export function adamStep(params: Float32Array, gradient: Float32Array, state: AdamState, options: AdamOptions): void {
  const { lr, beta1, beta2, eps } = options;
  const decay = 1 - lr * (options.weightDecay ?? 0);
  const { m, v } = state;
  state.step += 1;
  const stepSize = lr / (1 - beta1 ** state.step);
  const sqrtBiasCorrection2 = Math.sqrt(1 - beta2 ** state.step);
  const oneMinusBeta1 = 1 - beta1;
  const oneMinusBeta2 = 1 - beta2;
  const n = params.length;
  if (decay !== 1) for (let i = 0; i < n; i++) params[i] *= decay;
  // One tight pass; m and v are rounded to float32 exactly as storing them does (Math.fround), so the
  // values used are the stored ones.
  for (let i = 0; i < n; i++) {
    const g = gradient[i];
    const mi = Math.fround(beta1 * m[i] + oneMinusBeta1 * g);
    const vi = Math.fround(beta2 * v[i] + oneMinusBeta2 * g * g);
    m[i] = mi;
    v[i] = vi;
    params[i] -= (stepSize * mi) / (Math.sqrt(vi) / sqrtBiasCorrection2 + eps);
  }
}
