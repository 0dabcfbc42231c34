import path from 'node:path';
import { writeFileAtomic } from '../fs/atomic-write.ts';

/** One line of `<out>/metrics.jsonl`: the figures of one finished epoch. */
export interface EpochMetrics {
  readonly epoch: number;
  /** Mean training cross-entropy over the epoch's images. */
  readonly loss: number;
  /** Training accuracy over the epoch's images. */
  readonly acc: number;
  /** Wall seconds of the epoch (of this process: a resumed epoch counts the time before the stop too). */
  readonly time: number;
  /** Wall seconds of training so far, this epoch included (evaluations and start-up not counted): the run's clock. */
  readonly trainingSeconds?: number;
  readonly imagesPerSecond: number;
  readonly globalStep: number;
  readonly workers: string;
  /** Test-set figures, when the epoch was followed by an evaluation. */
  readonly testLoss?: number;
  readonly testAcc?: number;
  readonly timestamp: string;
}

export function metricsPath(outDir: string): string {
  return path.join(outDir, 'metrics.jsonl');
}

/**
 * Writes `<out>/metrics.jsonl` whole, one line per finished epoch, from the run's history (which the checkpoint
 * keeps): atomically, so the file is always some checkpoint's complete history and never loses a line.
 */
export async function writeMetrics(outDir: string, history: readonly EpochMetrics[]): Promise<void> {
  await writeFileAtomic(metricsPath(outDir), history.map((m) => JSON.stringify(m) + '\n').join(''));
}

/** The tutorial's line, plus images/s: `epoch:  1 loss:1.67102 acc:0.38 time:26.23s images/s:1906`. */
export function formatEpochLine(m: EpochMetrics): string {
  const test = m.testAcc !== undefined ? ` test_acc:${m.testAcc.toFixed(2)}` : '';
  return `epoch:${String(m.epoch).padStart(2)} loss:${m.loss.toFixed(5)} acc:${m.acc.toFixed(2)} time:${m.time.toFixed(2)}s images/s:${m.imagesPerSecond.toFixed(0)}${test}`;
}
