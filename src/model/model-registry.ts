import type { ModelDefinition } from './model-definition.ts';
import { tutorialCnn } from './tutorial-cnn.ts';
import { bnCnnModel } from './bn-cnn.ts';
import { InvalidOptionError } from '../errors/index.ts';

/** Every network `--model` can name. */
export const MODELS: Readonly<Record<string, ModelDefinition>> = {
  tutorial: tutorialCnn,
  'bn-cnn': bnCnnModel,
};

export function modelByName(name: string): ModelDefinition {
  const model = MODELS[name];
  if (!model) throw new InvalidOptionError(`Unknown --model '${name}'. Choose one of: ${Object.keys(MODELS).join(', ')}.`);
  return model;
}
