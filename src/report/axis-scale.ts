// Linear scales and "nice" tick values for the report's charts.

/** Maps the domain [d0, d1] linearly onto the range [r0, r1]; a zero-width domain maps to the range's middle. */
export function linearScale(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  if (d1 === d0) return () => (r0 + r1) / 2;
  const k = (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

/** A step of 1, 2 or 5 × 10^n that cuts [lo, hi] into about `count` intervals. */
export function niceStep(lo: number, hi: number, count: number): number {
  const span = hi - lo;
  if (!(span > 0) || !Number.isFinite(span)) return 1;
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
}

/**
 * A domain that contains [lo, hi], widened to whole steps, and the ticks in it. A single value is given some
 * room around it, so a one-epoch run still gets an axis.
 */
export function niceDomain(lo: number, hi: number, count = 5): { min: number; max: number; ticks: number[] } {
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(lo, hi, count);
  const min = Math.floor(lo / step + 1e-9) * step;
  const max = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0, v = min; v <= max + step * 1e-9; i++, v = min + i * step) ticks.push(roundTo(v, step));
  return { min, max, ticks };
}

/** Whole-number ticks (epochs) from 1 to `last`: every one when few, else nice steps. */
export function integerTicks(first: number, last: number, most = 12): number[] {
  if (last - first + 1 <= most) return Array.from({ length: last - first + 1 }, (_, i) => first + i);
  const step = Math.max(1, Math.round(niceStep(first, last, most - 2)));
  const ticks: number[] = [];
  for (let v = Math.ceil(first / step) * step; v <= last; v += step) if (v >= first) ticks.push(v);
  if (ticks[0] !== first) ticks.unshift(first);
  return ticks;
}

/** A tick label with as many decimals as the step needs (0.05 → "0.05", 0.5 → "0.5", 2 → "2"). */
export function formatTick(value: number, step: number): string {
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return value.toFixed(decimals);
}

function roundTo(v: number, step: number): number {
  const decimals = Math.max(0, -Math.floor(Math.log10(step)) + 2);
  return Number(v.toFixed(Math.min(12, decimals)));
}
