import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../fs/atomic-write.ts';
import { float32ToLittleEndian, readFloat32LE } from '../fs/float32-le.ts';
import { ModelFormatError } from '../errors/index.ts';
import type { ModelDefinition } from './model-definition.ts';
import { MODELS, modelByName } from './model-registry.ts';
import { parameterCount } from './parameter-vector.ts';

/**
 * The TensorFlow.js LayersModel format: `<dir>/model.json` (Keras topology + weights manifest) and
 * `<dir>/weights.bin` (every weight as little-endian float32, concatenated in manifest order). Loadable as it
 * is with `tf.loadLayersModel` in Node or a browser; `userDefinedMetadata.trainer` names the trainer's model
 * so `loadLayersModelWeights` can map the file back onto a ModelDefinition.
 */
export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';
export const GENERATED_BY = 'cifar-dp-trainer 0.1.0';

export interface WeightManifestEntry {
  name: string;
  shape: number[];
  dtype: 'float32';
}

export interface LayersModelJson {
  format: 'layers-model';
  generatedBy: string;
  convertedBy: null;
  modelTopology: object;
  weightsManifest: { paths: string[]; weights: WeightManifestEntry[] }[];
  userDefinedMetadata: { trainer: { model: string; parameterCount: number } };
}

export function layersModelJson(model: ModelDefinition): LayersModelJson {
  return {
    format: 'layers-model',
    generatedBy: GENERATED_BY,
    convertedBy: null,
    modelTopology: model.kerasTopology(),
    weightsManifest: [
      { paths: [WEIGHTS_BIN], weights: model.parameters.map((p) => ({ name: p.name, shape: [...p.shape], dtype: 'float32' })) },
    ],
    userDefinedMetadata: { trainer: { model: model.name, parameterCount: parameterCount(model) } },
  };
}

/** Writes `<dir>/weights.bin`, then `<dir>/model.json`, each atomically; creates `dir` if needed. */
export async function saveLayersModel(dir: string, model: ModelDefinition, weights: Float32Array): Promise<void> {
  const count = parameterCount(model);
  if (weights.length !== count) {
    throw new ModelFormatError(
      `Cannot save model '${model.name}' to ${dir}: got ${weights.length} weights, the model has ${count} parameters.`,
    );
  }
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(path.join(dir, WEIGHTS_BIN), float32ToLittleEndian(weights));
  await writeFileAtomic(path.join(dir, MODEL_JSON), JSON.stringify(layersModelJson(model), null, 2) + '\n');
}

/**
 * Reads a model saved by `saveLayersModel`: the definition named in model.json's metadata and its flat weight
 * vector. Throws ModelFormatError (naming the file) when either file is missing or unreadable, model.json is not
 * this trainer's LayersModel, the manifest's names/shapes differ from the definition, or weights.bin has the
 * wrong size.
 */
export async function loadLayersModelWeights(dir: string): Promise<{ model: ModelDefinition; weights: Float32Array }> {
  const jsonPath = path.join(dir, MODEL_JSON);
  const json = parseModelJson(jsonPath, await readOrThrow(jsonPath));
  const model = modelFromMetadata(jsonPath, json);
  const weightsPath = path.join(dir, checkManifest(jsonPath, json, model));
  const bytes = await readOrThrow(weightsPath);
  const expectedBytes = parameterCount(model) * 4;
  if (bytes.byteLength !== expectedBytes) {
    const how = bytes.byteLength < expectedBytes ? 'truncated' : 'too long';
    throw new ModelFormatError(
      `${weightsPath} is ${how}: ${bytes.byteLength} bytes, but model '${model.name}' needs ${expectedBytes} ` +
        `(${parameterCount(model)} float32 weights). Save the model again or restore both files from the same run.`,
    );
  }
  return { model, weights: readFloat32LE(bytes, 0, bytes.byteLength / 4) };
}

async function readOrThrow(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(error)})`;
    throw new ModelFormatError(
      `${file} ${why}. A saved model is a folder holding ${MODEL_JSON} and ${WEIGHTS_BIN}, as training writes them.`,
      { cause: error },
    );
  }
}

function parseModelJson(file: string, bytes: Buffer): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new ModelFormatError(`${file} is not valid JSON (${(error as Error).message}); the file is corrupt.`, { cause: error });
  }
  if (!isRecord(json) || json.format !== 'layers-model') {
    throw new ModelFormatError(`${file} is not a TensorFlow.js LayersModel (its "format" is not "layers-model").`);
  }
  return json;
}

function modelFromMetadata(file: string, json: Record<string, unknown>): ModelDefinition {
  const meta = json.userDefinedMetadata;
  const trainer = isRecord(meta) ? meta.trainer : undefined;
  const name = isRecord(trainer) ? trainer.model : undefined;
  const known = Object.keys(MODELS).join(', ');
  if (typeof name !== 'string') {
    throw new ModelFormatError(
      `${file} does not say which model it holds (no userDefinedMetadata.trainer.model); it was not written by this trainer. Known models: ${known}.`,
    );
  }
  let model: ModelDefinition;
  try {
    model = modelByName(name);
  } catch (error) {
    throw new ModelFormatError(`${file} holds model '${name}', which this trainer does not know. Known models: ${known}.`, {
      cause: error,
    });
  }
  const count = isRecord(trainer) ? trainer.parameterCount : undefined;
  if (count !== undefined && count !== parameterCount(model)) {
    throw new ModelFormatError(
      `${file} says model '${name}' has ${String(count)} parameters, but '${name}' has ${parameterCount(model)}; it was saved by an incompatible version.`,
    );
  }
  return model;
}

/** Checks the manifest lists exactly the model's parameters, in order; returns the weights file's name. */
function checkManifest(file: string, json: Record<string, unknown>, model: ModelDefinition): string {
  const manifest = json.weightsManifest;
  if (!Array.isArray(manifest) || manifest.length !== 1 || !isRecord(manifest[0])) {
    throw new ModelFormatError(`${file} must have a weightsManifest with exactly one group; the file is corrupt.`);
  }
  const group = manifest[0];
  const paths = group.paths;
  if (!Array.isArray(paths) || paths.length !== 1 || paths[0] !== WEIGHTS_BIN) {
    throw new ModelFormatError(`${file}: the weightsManifest must name the single file "${WEIGHTS_BIN}" (got ${JSON.stringify(paths)}).`);
  }
  const weights = group.weights;
  if (!Array.isArray(weights) || weights.length !== model.parameters.length) {
    throw new ModelFormatError(
      `${file} lists ${Array.isArray(weights) ? weights.length : 'no'} weights, model '${model.name}' has ${model.parameters.length}.`,
    );
  }
  model.parameters.forEach((spec, i) => {
    const entry: unknown = weights[i];
    const e = isRecord(entry) ? entry : {};
    const shapeOk = Array.isArray(e.shape) && e.shape.length === spec.shape.length && spec.shape.every((d, j) => (e.shape as unknown[])[j] === d);
    if (e.name !== spec.name || !shapeOk || e.dtype !== 'float32') {
      throw new ModelFormatError(
        `${file}: weight ${i} is ${JSON.stringify(entry)}, but model '${model.name}' expects ` +
          `${JSON.stringify({ name: spec.name, shape: spec.shape, dtype: 'float32' })}.`,
      );
    }
  });
  return WEIGHTS_BIN;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
