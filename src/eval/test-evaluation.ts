import type { ImageSet } from '../data/cifar10-dataset.ts';
import type { EvalTask, WorkerPool } from '../pool/worker-pool.ts';

/** What an evaluation of the test set finds; written as `eval.json`. */
export interface EvaluationReport {
  readonly images: number;
  readonly accuracy: number;
  readonly loss: number;
  readonly classNames: readonly string[];
  readonly perClassAccuracy: readonly number[];
  /** confusion[true][predicted] = image count. */
  readonly confusion: readonly (readonly number[])[];
  /** Test-image indices the model got wrong, with the predicted class (at most 100, in index order). */
  readonly misclassified: readonly { readonly index: number; readonly label: number; readonly predicted: number }[];
  readonly seconds: number;
  /** Classified with test-time augmentation. */
  readonly tta?: boolean;
}

/** Images per evaluation task: big enough to amortise a task, small enough to spread over the workers. */
export const EVAL_CHUNK = 500;

/**
 * Classifies the first `count` test images with published weights `weightsVersion`, spread over the pool;
 * with `tta`, each from the combined logits of its test-time augmentation views.
 */
export async function evaluateTestSet(
  pool: WorkerPool,
  weightsVersion: number,
  test: ImageSet,
  classNames: readonly string[],
  count = test.count,
  tta = false,
): Promise<EvaluationReport> {
  const started = performance.now();
  const tasks: EvalTask[] = [];
  for (let start = 0; start < count; start += EVAL_CHUNK) tasks.push({ weightsVersion, start, end: Math.min(count, start + EVAL_CHUNK), ...(tta ? { tta } : {}) });
  const results = await pool.evaluate(tasks);
  const classes = classNames.length;
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  const misclassified: { index: number; label: number; predicted: number }[] = [];
  let lossSum = 0;
  let correct = 0;
  for (const result of results) {
    lossSum += result.lossSum;
    result.predictions.forEach((predicted, k) => {
      const index = result.start + k;
      const label = test.labels[index];
      confusion[label][predicted] += 1;
      if (label === predicted) correct += 1;
      else if (misclassified.length < 100) misclassified.push({ index, label, predicted });
    });
  }
  const perClassAccuracy = confusion.map((row, c) => {
    const total = row.reduce((a, b) => a + b, 0);
    return total === 0 ? 0 : row[c] / total;
  });
  return {
    images: count, accuracy: correct / count, loss: lossSum / count, classNames, perClassAccuracy, confusion,
    misclassified, seconds: (performance.now() - started) / 1000, ...(tta ? { tta } : {}),
  };
}

/** The tutorial's `Acc: 0.57`, then per-class accuracy and the confusion matrix. */
export function formatEvaluation(report: EvaluationReport): string {
  const names = report.classNames;
  const width = Math.max(...names.map((n) => n.length));
  const lines = [`Acc: ${report.accuracy.toFixed(2)}  (${report.images} test images, loss ${report.loss.toFixed(5)}, ${report.seconds.toFixed(2)}s)`, '', 'Per-class accuracy:'];
  names.forEach((name, c) => lines.push(`  ${name.padEnd(width)}  ${report.perClassAccuracy[c].toFixed(2)}`));
  lines.push('', 'Confusion matrix (rows: true class, columns: predicted):');
  lines.push(' '.repeat(width + 2) + names.map((n) => n.slice(0, 5).padStart(6)).join(''));
  report.confusion.forEach((row, c) => lines.push(`  ${names[c].padEnd(width)}` + row.map((v) => String(v).padStart(6)).join('')));
  return lines.join('\n');
}
