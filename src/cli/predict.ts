/** `npm run predict -- image.png [more images]`: classifies the user's own PNG/JPEG images with a trained model. */
import path from 'node:path';
import { BACKEND_CHOICES, type BackendChoice } from '../compute/backend.ts';
import { ImageDecodeError, InvalidOptionError } from '../errors/index.ts';
import { type CommandHelp, type FlagTable, readCommandLine } from '../options/parse-flags.ts';
import { classNamesFor } from '../predict/class-names.ts';
import { Classifier } from '../predict/classifier.ts';
import { predictImageFile, type ImagePrediction } from '../predict/predict-image-file.ts';
import { FIT_MODES, type FitMode } from '../predict/resize-image.ts';
import { topClasses } from '../predict/top-classes.ts';
import { runCli } from './run-cli.ts';

export interface PredictOptions {
  model: string;
  top: number;
  fit: FitMode;
  backend: BackendChoice;
  json: boolean;
}

export const DEFAULT_PREDICT_OPTIONS: PredictOptions = { model: 'model', top: 3, fit: 'crop', backend: 'auto', json: false };

const PREDICT_FLAGS: FlagTable<PredictOptions> = {
  model: { kind: 'string', key: 'model', help: 'Folder holding model.json and weights.bin' },
  top: { kind: 'integer', key: 'top', help: 'How many of the most likely classes to print', min: 1 },
  fit: { kind: 'string', key: 'fit', help: 'Non-square images: keep the centred square, or stretch the whole image', choices: FIT_MODES },
  backend: { kind: 'string', key: 'backend', help: 'Compute backend', choices: BACKEND_CHOICES },
  json: { kind: 'boolean', key: 'json', help: 'One JSON object per file (all probabilities, logits) instead of text' },
};

const USAGE = 'npm run predict -- image.png [more images] [flags]';
const HELP: CommandHelp = {
  usage: USAGE,
  description: 'Classifies your own PNG and JPEG files (any size; each squared by --fit, area-averaged to 32×32, scaled to [0, 1]) with a trained model.',
  examples: ['npm run predict -- cat.jpg', 'npm run predict -- photos/*.png --model runs/bn --top 5', 'npm run predict -- img.png --json'],
};

async function main(): Promise<number> {
  const options = readCommandLine(process.argv.slice(2), HELP, PREDICT_FLAGS, DEFAULT_PREDICT_OPTIONS, DEFAULT_PREDICT_OPTIONS, { positionals: true });
  if (!options) return 0;
  const files = options.positionals;
  if (files.length === 0) throw new InvalidOptionError(`Name at least one PNG or JPEG file: ${USAGE}`);

  const classifier = await Classifier.load(options.model, options.backend);
  const names = await classNamesFor(options.model, classifier.model.classes);
  const top = Math.min(options.top, classifier.model.classes);
  const [size] = classifier.inputShape;
  if (!options.json) {
    console.log(
      `Model ${path.join(options.model, 'model.json')} (${classifier.model.name}), backend ${classifier.backend}. Each image: ` +
        `${options.fit === 'crop' ? 'centred square' : 'whole image, stretched'}, area-averaged to ${size}×${size}.`,
    );
  }
  let failed = 0;
  for (const file of files) {
    let prediction: ImagePrediction;
    try {
      // `npm run` starts in the project root; relative paths mean where the user typed the command (INIT_CWD).
      prediction = await predictImageFile(classifier, path.resolve(process.env.INIT_CWD ?? process.cwd(), file), options.fit);
    } catch (error) {
      if (!(error instanceof ImageDecodeError)) throw error;
      failed += 1;
      process.stderr.write(`Error: ${error.message}\n`);
      if (options.json) console.log(JSON.stringify({ file, error: error.message }));
      continue;
    }
    const ranked = topClasses(prediction.probabilities, names, top);
    if (options.json) {
      console.log(JSON.stringify({
        file, format: prediction.format, width: prediction.width, height: prediction.height, region: prediction.region,
        top: ranked.map((r) => ({ class: r.name, index: r.index, probability: r.probability })),
        probabilities: prediction.probabilities, logits: [...prediction.logits],
      }));
      continue;
    }
    const { region } = prediction;
    const cropped = region.width !== prediction.width || region.height !== prediction.height ? `, centre ${region.width}×${region.height}` : '';
    console.log(`${file}  (${prediction.format} ${prediction.width}×${prediction.height}${cropped})`);
    const width = Math.max(...ranked.map((r) => r.name.length));
    for (const r of ranked) console.log(`  ${r.name.padEnd(width)}  ${(r.probability * 100).toFixed(2).padStart(6)}%`);
  }
  if (failed > 0) {
    process.stderr.write(`${failed} of ${files.length} file${files.length === 1 ? '' : 's'} could not be classified.\n`);
    return 1;
  }
  return 0;
}

runCli(main);
