import { InvalidOptionError } from '../errors/index.ts';

/** How the learning rate moves over a run (--lr-schedule). */
export type LrScheduleName = 'constant' | 'cosine' | 'onecycle' | 'airbench';
export const LR_SCHEDULES: readonly LrScheduleName[] = ['constant', 'cosine', 'onecycle', 'airbench'];

export interface LrScheduleOptions {
  readonly schedule: LrScheduleName;
  /** Peak learning rate (--lr). */
  readonly lr: number;
  /** Steps of linear warm-up from lr/25 (onecycle) or from 0 (constant, cosine) to lr; airbench: where the peak is (0: 23% of the run). */
  readonly warmupSteps: number;
  readonly totalSteps: number;
}

/**
 * The learning rate of step `step` (0-based), a pure function of the run's settings, so a resumed run continues
 * on the same curve.
 * - constant: lr after the warm-up (the tutorial's setting when the warm-up is 0).
 * - cosine: warm-up, then half a cosine from lr down to 0 at the run's last step.
 * - onecycle: as PyTorch's OneCycleLR (cosine annealing): from lr/25 up to lr over the warm-up (30% of the run
 *   when no warm-up is given), then down to lr/25/1e4.
 * - airbench: lr × airbenchLrFactor(step): linear from 0.2·lr up to lr, then linear down to 0.07·lr.
 */
export function learningRate(step: number, o: LrScheduleOptions): number {
  if (o.schedule === 'airbench') return o.lr * airbenchLrFactor(step, o.totalSteps, o.warmupSteps > 0 ? o.warmupSteps : undefined);
  if (o.schedule === 'onecycle') {
    // The peak is reached at step `peak`, as OneCycleLR(pct_start=0.3, anneal_strategy='cos') places it.
    const peak = Math.max(1, (o.warmupSteps > 0 ? o.warmupSteps : 0.3 * o.totalSteps) - 1);
    const initial = o.lr / 25;
    const final = initial / 1e4;
    if (step <= peak) return cosineBetween(initial, o.lr, step / peak);
    return cosineBetween(o.lr, final, Math.min(1, (step - peak) / Math.max(1, o.totalSteps - 1 - peak)));
  }
  if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
  if (o.schedule === 'constant') return o.lr;
  const rest = Math.max(1, o.totalSteps - 1 - o.warmupSteps);
  return cosineBetween(o.lr, 0, Math.min(1, (step - o.warmupSteps) / rest));
}

/** airbench94's learning-rate factor: 0.2 at step 0, 1 at the peak, 0.07 at the last step (and after). */
export const AIRBENCH_LR_SHAPE = { start: 0.2, peakFraction: 0.23, end: 0.07 } as const;

/**
 * The factor airbench94 multiplies every group's learning rate by at step `step` (0-based: the steps already
 * taken, as LambdaLR's last_epoch), exactly its get_lr in float64:
 *   warmup = int(total · 0.23);  step < warmup: 0.2·(1 − step/warmup) + 1·(step/warmup)
 *   else: 1·(1 − f) + 0.07·f with f = (step − warmup) / (total − warmup)
 * (np.interp over [0, warmup, total] → [0.2, 1, 0.07]). `peakStep` replaces int(total · 0.23) when given.
 */
export function airbenchLrFactor(step: number, totalSteps: number, peakStep = Math.trunc(totalSteps * AIRBENCH_LR_SHAPE.peakFraction)): number {
  const { start, end } = AIRBENCH_LR_SHAPE;
  if (step < peakStep) {
    const frac = step / peakStep;
    return start * (1 - frac) + 1.0 * frac;
  }
  const frac = (step - peakStep) / (totalSteps - peakStep);
  return 1.0 * (1 - frac) + end * frac;
}

/** From `from` (t = 0) to `to` (t = 1) along half a cosine. */
function cosineBetween(from: number, to: number, t: number): number {
  return to + ((from - to) * (1 + Math.cos(Math.PI * t))) / 2;
}

export function parseLrSchedule(name: string): LrScheduleName {
  if (!(LR_SCHEDULES as readonly string[]).includes(name)) {
    throw new InvalidOptionError(`--lr-schedule must be one of ${LR_SCHEDULES.join(', ')}; got '${name}'.`);
  }
  return name as LrScheduleName;
}
