import { InvalidOptionError } from '../errors/index.ts';

/** How the learning rate moves over a run (--lr-schedule). */
export type LrScheduleName = 'constant' | 'cosine' | 'onecycle';
export const LR_SCHEDULES: readonly LrScheduleName[] = ['constant', 'cosine', 'onecycle'];

export interface LrScheduleOptions {
  readonly schedule: LrScheduleName;
  /** Peak learning rate (--lr). */
  readonly lr: number;
  /** Steps of linear warm-up from lr/25 (onecycle) or from 0 (constant, cosine) to lr. */
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
 */
export function learningRate(step: number, o: LrScheduleOptions): number {
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
