import { TrainerError } from './trainer-error.ts';

/** A run folder's metrics.jsonl or eval.json, which a report is built from, is missing or corrupt. */
export class ReportDataError extends TrainerError {}
