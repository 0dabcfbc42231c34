// From a run folder to report.html: read the run's files, fetch the misclassified pictures, render, write.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { loadCifar10 } from '../data/cifar10-dataset.ts';
import { DatasetError, InvalidOptionError } from '../errors/index.ts';
import { writeFileAtomic } from '../fs/atomic-write.ts';
import { misclassifiedImages, type MisclassifiedImage } from './misclassified-images.ts';
import { readRunData, type RunData } from './report-data.ts';
import { reportHtml } from './report-html.ts';

export const REPORT_FILE = 'report.html';

export interface BuildReportOptions {
  /** The run folder: metrics.jsonl, eval.json (and model.json for the model's name). */
  readonly modelDir: string;
  /** The CIFAR-10 folder the misclassified pictures are read from. */
  readonly dataDir: string;
  /** Where the page goes (default `<modelDir>/report.html`). */
  readonly out?: string;
  /** false: list the misclassified images as text, without reading the data set. Default true. */
  readonly images?: boolean;
}

export interface BuiltReport {
  readonly file: string;
  readonly run: RunData;
  /** Pictures embedded (0 with images: false). */
  readonly pictures: number;
  readonly bytes: number;
}

export async function buildReport(options: BuildReportOptions): Promise<BuiltReport> {
  const run = await readRunData(options.modelDir);
  let images: MisclassifiedImage[] | null = null;
  if (options.images ?? true) {
    images = [];
    if (run.evaluation.misclassified.length > 0) {
      let test;
      try {
        ({ test } = await loadCifar10(options.dataDir, { trainLimit: 1 }));
      } catch (error) {
        if (!(error instanceof DatasetError)) throw error;
        throw new DatasetError(
          `${error.message} The report reads its pictures of misclassified test images from there; pass --data DIR, ` +
            `or --no-images to build the report without them.`,
          { cause: error },
        );
      }
      images = misclassifiedImages(run.evaluation, test, options.dataDir);
    }
  }
  const html = reportHtml(run, { images, noImagesReason: images ? undefined : 'built with --no-images', generatedAt: new Date() });
  const file = path.resolve(options.out ?? path.join(options.modelDir, REPORT_FILE));
  try {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFileAtomic(file, html);
  } catch (error) {
    throw new InvalidOptionError(`Cannot write the report to ${file} (${(error as Error).message}). Choose another --out.`, { cause: error });
  }
  return { file, run, pictures: images?.length ?? 0, bytes: Buffer.byteLength(html) };
}
