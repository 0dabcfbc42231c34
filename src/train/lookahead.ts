/**
 * airbench's Lookahead (its LookaheadState): an exponential moving average of the whole flat vector — every
 * weight and batch norm's running statistics, as airbench averages every float tensor of the state_dict —
 * that the weights are reset to every LOOKAHEAD_EVERY steps, with a decay that grows over the run:
 *
 *   after step s (1-based count), when s % 5 = 0:  decay = 0.95⁵ · (s / total)³
 *                                                   ema ← lerp(ema, weights, 1 − decay);  weights ← ema
 *   after the last step:                            weights ← ema   (lerp with weight 0: the ema as it is)
 *
 * so the steps after the last multiple of 5 are dropped. Plain JavaScript loops with every operation rounded to
 * float32 (Math.fround) in torch's order (below): the result is the same bits on every machine and in every
 * process, and a resumed run continues it exactly from the checkpointed `ema`. The state is `ema` alone (the
 * decay is a function of the step and the run's length). JS rather than the optimizer's WebAssembly module: it
 * runs once every 5 steps, where a few milliseconds do not matter, and keeps the EMA independent of the
 * optimizer's memory layout.
 */
export const LOOKAHEAD_EVERY = 5;

/** float32 of 0.95⁵, as torch multiplies its float32 schedule by the Python float. */
const DECAY_SCALE = Math.fround(0.95 ** 5);

/**
 * The decay of the update after step `stepsDone` of `totalSteps`, bit for bit airbench's
 * `(0.95**5 * (torch.arange(total + 1) / total) ** 3)[stepsDone].item()`: float32 arithmetic, the cube as
 * (x·x)·x (torch's pow by 3).
 */
export function lookaheadDecay(stepsDone: number, totalSteps: number): number {
  const f = Math.fround;
  const frac = f(stepsDone / totalSteps);
  return f(DECAY_SCALE * f(f(frac * frac) * frac));
}

export type LookaheadAction = 'none' | 'update' | 'final';

export class Lookahead {
  /** The moving average, one float per entry of the flat vector: what a checkpoint must hold. */
  readonly ema: Float32Array;

  private constructor(ema: Float32Array) {
    this.ema = ema;
  }

  /** A new average equal to `weights` (copied): airbench clones the state_dict before training. */
  static start(weights: Float32Array): Lookahead {
    return new Lookahead(weights.slice());
  }

  /** Continues from a checkpointed average (copied). */
  static resume(ema: Float32Array, parameterCount: number): Lookahead {
    if (ema.length !== parameterCount) {
      throw new RangeError(`The lookahead average holds ${ema.length} values for ${parameterCount} weights.`);
    }
    return new Lookahead(ema.slice());
  }

  /**
   * What airbench's loop does after step `stepsDone` (1-based: the steps taken so far) of `totalSteps`: an update
   * every LOOKAHEAD_EVERY steps, then at the last step weights ← ema (both, in that order, when the last step
   * is a multiple of 5). Changes `weights` in place; returns the last thing it did.
   */
  afterStep(weights: Float32Array, stepsDone: number, totalSteps: number): LookaheadAction {
    if (!(Number.isSafeInteger(stepsDone) && Number.isSafeInteger(totalSteps) && stepsDone >= 1 && stepsDone <= totalSteps)) {
      throw new RangeError(`Lookahead step ${stepsDone} is outside the run's steps 1-${totalSteps}.`);
    }
    let action: LookaheadAction = 'none';
    if (stepsDone % LOOKAHEAD_EVERY === 0) {
      this.update(weights, lookaheadDecay(stepsDone, totalSteps));
      action = 'update';
    }
    if (stepsDone === totalSteps) {
      this.update(weights, 1);
      action = 'final';
    }
    return action;
  }

  /**
   * ema ← lerp(ema, weights, 1 − decay), then weights ← ema, element by element, as torch's
   * `ema.lerp_(w, weight)` computes it (weight = float32(1 − decay)):
   *   |weight| < 0.5:  ema + weight·(w − ema)      else:  w − (w − ema)·(1 − weight)
   * each product and difference rounded to float32 on its own (torch's CPU kernel fuses the multiply-add:
   * the two agree to an ulp of the operands).
   */
  update(weights: Float32Array, decay: number): void {
    if (weights.length !== this.ema.length) {
      throw new RangeError(`Lookahead over ${this.ema.length} values got ${weights.length} weights.`);
    }
    const f = Math.fround;
    const weight = f(1 - decay);
    const ema = this.ema;
    const n = ema.length;
    if (Math.abs(weight) < 0.5) {
      for (let i = 0; i < n; i++) {
        const e = f(ema[i] + f(weight * f(weights[i] - ema[i])));
        ema[i] = e;
        weights[i] = e;
      }
    } else {
      const rest = f(1 - weight);
      for (let i = 0; i < n; i++) {
        const w = weights[i];
        const e = f(w - f(f(w - ema[i]) * rest));
        ema[i] = e;
        weights[i] = e;
      }
    }
  }
}
