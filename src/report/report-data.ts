// What a report is built from: the run's metrics.jsonl (one line per epoch) and eval.json (the final
// evaluation), read and checked field by field so a damaged file is named, not drawn as nonsense.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ReportDataError } from '../errors/index.ts';
import type { EvaluationReport } from '../eval/test-evaluation.ts';
import { metricsPath, type EpochMetrics } from '../train/metrics-log.ts';

export const EVAL_JSON = 'eval.json';

export interface RunData {
  /** The run folder the files came from. */
  readonly dir: string;
  /** One entry per epoch, in epoch order (a repeated epoch keeps its last line). */
  readonly epochs: readonly EpochMetrics[];
  readonly evaluation: EvaluationReport;
  /** The model's name from model.json's metadata, when model.json is there and says it. */
  readonly modelName: string | undefined;
}

/** Reads `<dir>/metrics.jsonl`, `<dir>/eval.json` and (optionally) `<dir>/model.json`'s model name. */
export async function readRunData(dir: string): Promise<RunData> {
  const epochs = parseMetricsJsonl(metricsPath(dir), await readText(metricsPath(dir), metricsAdvice(dir)));
  const evalFile = path.join(dir, EVAL_JSON);
  const evaluation = parseEvaluation(evalFile, await readText(evalFile, evalAdvice(dir)));
  return { dir, epochs, evaluation, modelName: await readModelName(dir) };
}

function metricsAdvice(dir: string): string {
  return `Training writes it (one line per epoch): point --model at a run's output folder, or train into ${dir} with npm run coordinator -- --out ${dir}.`;
}

function evalAdvice(dir: string): string {
  return `It is written by the final evaluation of a training run (not with --no-eval), or by npm run eval -- --model ${dir}.`;
}

async function readText(file: string, advice: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(error)})`;
    throw new ReportDataError(`${file} ${why}. ${advice}`, { cause: error });
  }
}

/** Parses metrics.jsonl: every non-empty line one EpochMetrics object; the file must hold at least one. */
export function parseMetricsJsonl(file: string, text: string): EpochMetrics[] {
  const byEpoch = new Map<number, EpochMetrics>();
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${file} line ${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new ReportDataError(`${where} is not valid JSON (${(error as Error).message}); the file is corrupt.`, { cause: error });
    }
    if (!isRecord(value)) throw new ReportDataError(`${where} is not a JSON object; the file is corrupt.`);
    const epoch = value.epoch;
    if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 1) {
      throw new ReportDataError(`${where}: "epoch" must be a whole number ≥ 1, got ${JSON.stringify(epoch)}; the file is corrupt.`);
    }
    for (const key of ['loss', 'acc', 'time', 'imagesPerSecond'] as const) requireNumber(value, key, where);
    for (const key of ['testLoss', 'testAcc'] as const) if (value[key] !== undefined) requireNumber(value, key, where);
    requireFraction(value.acc as number, 'acc', where);
    if (value.testAcc !== undefined) requireFraction(value.testAcc as number, 'testAcc', where);
    byEpoch.set(epoch, value as unknown as EpochMetrics);
  });
  if (byEpoch.size === 0) {
    throw new ReportDataError(`${file} holds no epochs: the run has not finished one yet. Report again after the first epoch.`);
  }
  return [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch);
}

/** Parses eval.json and checks that its parts agree with each other (class count, matrix size, indices). */
export function parseEvaluation(file: string, text: string): EvaluationReport {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ReportDataError(`${file} is not valid JSON (${(error as Error).message}); the file is corrupt.`, { cause: error });
  }
  if (!isRecord(value)) throw new ReportDataError(`${file} is not a JSON object; the file is corrupt.`);
  const bad = (what: string): ReportDataError => new ReportDataError(`${file}: ${what}; the file is corrupt. Run npm run eval again to rewrite it.`);
  requireNumber(value, 'accuracy', file);
  requireFraction(value.accuracy as number, 'accuracy', file);
  requireNumber(value, 'loss', file);
  const images = value.images;
  if (typeof images !== 'number' || !Number.isSafeInteger(images) || images < 1) throw bad(`"images" must be a whole number ≥ 1`);
  const names = value.classNames;
  if (!Array.isArray(names) || names.length < 2 || !names.every((n) => typeof n === 'string' && n !== '')) {
    throw bad(`"classNames" must list at least two class names`);
  }
  const k = names.length;
  const perClass = value.perClassAccuracy;
  if (!Array.isArray(perClass) || perClass.length !== k || !perClass.every((v) => typeof v === 'number' && v >= 0 && v <= 1)) {
    throw bad(`"perClassAccuracy" must hold ${k} numbers between 0 and 1, one per class`);
  }
  const confusion = value.confusion;
  const isCountRow = (row: unknown): boolean =>
    Array.isArray(row) && row.length === k && row.every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0);
  if (!Array.isArray(confusion) || confusion.length !== k || !confusion.every(isCountRow)) {
    throw bad(`"confusion" must be a ${k}×${k} matrix of image counts`);
  }
  const total = (confusion as number[][]).reduce((sum, row) => sum + row.reduce((a, b) => a + b, 0), 0);
  if (total !== images) throw bad(`the confusion matrix counts ${total} images but "images" is ${images}`);
  const wrong = value.misclassified;
  const isEntry = (e: unknown): boolean =>
    isRecord(e) && [e.index, e.label, e.predicted].every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) &&
    (e.index as number) < images && (e.label as number) < k && (e.predicted as number) < k && e.label !== e.predicted;
  if (!Array.isArray(wrong) || !wrong.every(isEntry)) {
    throw bad(`"misclassified" must list {index, label, predicted} with an index below ${images}, classes below ${k} and label ≠ predicted`);
  }
  return value as unknown as EvaluationReport;
}

async function readModelName(dir: string): Promise<string | undefined> {
  try {
    const json: unknown = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
    const meta = isRecord(json) ? json.userDefinedMetadata : undefined;
    const trainer = isRecord(meta) ? meta.trainer : undefined;
    return isRecord(trainer) && typeof trainer.model === 'string' ? trainer.model : undefined;
  } catch {
    return undefined; // the report does not need the model itself; its name is a nicety
  }
}

function requireNumber(value: Record<string, unknown>, key: string, where: string): void {
  const v = value[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new ReportDataError(`${where}: "${key}" must be a finite number, got ${JSON.stringify(v)}; the file is corrupt.`);
  }
}

function requireFraction(v: number, key: string, where: string): void {
  if (v < 0 || v > 1) throw new ReportDataError(`${where}: "${key}" must lie between 0 and 1, got ${v}; the file is corrupt.`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
