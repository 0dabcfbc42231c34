/** Adam's hyper-parameters; PyTorch's defaults unless the run says otherwise. */
export interface AdamOptions {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Decoupled weight decay as torch.optim.AdamW (0: plain Adam, the tutorial's optimizer). */
  readonly weightDecay?: number;
}

/** float32's smallest normal number, 2⁻¹²⁶: Adam's moments below it are taken as 0 (see adamStep). */
const SMALLEST_NORMAL = 2 ** -126;

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

/** The float32 constants of step `step` (1-based), as torch passes its Python floats to float32 kernels. */
export interface AdamConstants {
  readonly stepSize: number;
  readonly sqrtBiasCorrection2: number;
  readonly beta1: number;
  readonly oneMinusBeta1: number;
  readonly beta2: number;
  readonly oneMinusBeta2: number;
  readonly eps: number;
  readonly decay: number;
}

export function adamConstants(step: number, options: AdamOptions): AdamConstants {
  const { lr, beta1, beta2, eps } = options;
  const f = Math.fround;
  return {
    stepSize: f(lr / (1 - beta1 ** step)),
    sqrtBiasCorrection2: f(Math.sqrt(1 - beta2 ** step)),
    beta1: f(beta1),
    oneMinusBeta1: f(1 - beta1),
    beta2: f(beta2),
    oneMinusBeta2: f(1 - beta2),
    eps: f(eps),
    decay: f(1 - lr * (options.weightDecay ?? 0)),
  };
}

/**
 * One Adam step on the flat parameter vector, in place, as torch.optim.Adam (bias-corrected, eps added after the
 * square root of the corrected second moment), or AdamW when weightDecay > 0, in float32: every operation is
 * rounded to float32 (Math.fround), in this order, per element i:
 *   p ← p·decay;  m ← β1·m + (1−β1)·g;  v ← β2·v + ((1−β2)·g)·g;  p ← p − stepSize·(m / (√v / √(1−β2ᵗ) + ε))
 * where a new m or v below float32's normal range (|x| < 2⁻¹²⁶, subnormal) is taken as 0: computing on
 * subnormals is about a hundred times slower on x86, and such a moment moves its weight by under 10⁻³⁰, less
 * than an ulp of any weight above 10⁻²³ (torch keeps them; its weights come out the same). So the result is
 * the same on every machine, and bit for bit what the coordinator's WebAssembly kernel (src/train/optimizer)
 * computes; this is its reference. `gradient` is the batch-mean gradient. Only elements
 * [start, end) are updated (default: all); the step count advances once per call.
 */
export function adamStep(
  params: Float32Array, gradient: Float32Array, state: AdamState, options: AdamOptions,
  start = 0, end = params.length,
): void {
  state.step += 1;
  const c = adamConstants(state.step, options);
  const { stepSize, sqrtBiasCorrection2, beta1, oneMinusBeta1, beta2, oneMinusBeta2, eps, decay } = c;
  const { m, v } = state;
  const f = Math.fround;
  for (let i = start; i < end; i++) {
    const g = gradient[i];
    let mi = f(f(beta1 * m[i]) + f(oneMinusBeta1 * g));
    let vi = f(f(beta2 * v[i]) + f(f(oneMinusBeta2 * g) * g));
    if (Math.abs(mi) < SMALLEST_NORMAL) mi = 0;
    if (Math.abs(vi) < SMALLEST_NORMAL) vi = 0;
    const denom = f(f(f(Math.sqrt(vi)) / sqrtBiasCorrection2) + eps);
    const p = f(params[i] * decay);
    m[i] = mi;
    v[i] = vi;
    params[i] = p - f(stepSize * f(mi / denom));
  }
}
