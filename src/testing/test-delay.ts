/**
 * Test-only slowness, to make a moment last long enough for a test to act in it (a signal during a step, a
 * worker killed while it holds a job). Read once from the environment; unset outside tests:
 *   TRAINER_TEST_STEP_DELAY_MS  the coordinator sleeps this long before each training step;
 *   TRAINER_TEST_JOB_DELAY_MS   a remote worker sleeps this long before each job.
 */
export type TestDelayName = 'TRAINER_TEST_STEP_DELAY_MS' | 'TRAINER_TEST_JOB_DELAY_MS';

export function testDelayMs(name: TestDelayName): number {
  const ms = Number(process.env[name] ?? 0);
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
