/**
 * Named points where a test can make this process die as if SIGKILLed, so that crash-recovery tests hit the
 * exact moment they mean (between two writes of an epoch end, during the final evaluation...) instead of
 * hoping that a kill timed from outside lands there.
 *
 * Test-only: set TRAINER_TEST_CRASH_AT=<point>[@<n>] (the n-th time the point is reached; default the first).
 * Unset — always, outside tests — crashPoint() is one property read.
 */
export type CrashPointName =
  | 'epoch-end:after-checkpoint'
  | 'epoch-end:after-model-files'
  | 'epoch-end:after-metrics'
  | 'step:after-publish'
  | 'final-eval:start'
  | 'redis:after-announce'
  | 'redis:step-handed-out'
  | 'redis:evaluation-handed-out'
  | 'redis:before-cleanup';

const spec = parse(process.env.TRAINER_TEST_CRASH_AT);
let reached = 0;

function parse(text: string | undefined): { name: string; nth: number } | undefined {
  if (!text) return undefined;
  const [name, nth] = text.split('@');
  return { name, nth: nth === undefined ? 1 : Number(nth) };
}

/** Dies at once (SIGKILL: no handler, no flush, no clean-up) when TRAINER_TEST_CRASH_AT names this point. */
export function crashPoint(name: CrashPointName): void {
  if (spec === undefined || spec.name !== name) return;
  reached += 1;
  if (reached === spec.nth) {
    process.stderr.write(`[test] crashing at ${name} (TRAINER_TEST_CRASH_AT)\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
