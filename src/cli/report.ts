/** `npm run report`: a self-contained HTML report of a training run (curves, per-class accuracy, confusion matrix, misclassified images). */
import { pathToFileURL } from 'node:url';
import { resolveDataDir } from '../data/data-dir.ts';
import { type CommandHelp, type FlagTable, readCommandLine } from '../options/parse-flags.ts';
import { buildReport } from '../report/build-report.ts';
import { runCli } from './run-cli.ts';

export interface ReportOptions {
  model: string;
  data: string;
  out: string | undefined;
  images: boolean;
}

export const DEFAULT_REPORT_OPTIONS: ReportOptions = { model: 'model', data: 'data/cifar-10-batches-bin', out: undefined, images: true };

const REPORT_FLAGS: FlagTable<ReportOptions> = {
  model: { kind: 'string', key: 'model', help: 'Run folder holding metrics.jsonl and eval.json' },
  data: { kind: 'string', key: 'data', help: 'CIFAR-10 binary folder for the misclassified pictures (else $CIFAR10_DIR, else data/cifar-10-batches-bin)' },
  out: { kind: 'string', key: 'out', help: 'HTML file to write (default: <model>/report.html)' },
  images: { kind: 'boolean', key: 'images', help: 'Embed the misclassified test images (--no-images: list them as text, no data set needed)' },
};

const HELP: CommandHelp = {
  usage: 'npm run report -- [flags]',
  description: "Builds one self-contained HTML page of a run: loss and accuracy curves, per-class accuracy, confusion matrix, misclassified images.",
  examples: ['npm run report', 'npm run report -- --model runs/bn --out bn.html', 'npm run report -- --no-images   # no data set needed'],
  environment: [['CIFAR10_DIR', 'CIFAR-10 binary folder (the default of --data)']],
};

async function main(): Promise<number> {
  const options = readCommandLine(process.argv.slice(2), HELP, REPORT_FLAGS, { ...DEFAULT_REPORT_OPTIONS, data: resolveDataDir(undefined) }, DEFAULT_REPORT_OPTIONS);
  if (!options) return 0;
  const report = await buildReport({ modelDir: options.model, dataDir: resolveDataDir(options.data), out: options.out, images: options.images });
  const { epochs, evaluation } = report.run;
  console.log(
    `Report: ${report.file} (${(report.bytes / 1024).toFixed(0)} KiB; ${epochs.length} epoch${epochs.length === 1 ? '' : 's'}, ` +
      `Acc: ${evaluation.accuracy.toFixed(2)}, ${report.pictures} misclassified image${report.pictures === 1 ? '' : 's'} shown)`,
  );
  console.log(`Open ${pathToFileURL(report.file).href} in a browser (it needs no network).`);
  return 0;
}

runCli(main);
