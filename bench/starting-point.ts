/**
 * Where every tfjs training point of the benchmark starts: fresh weights from the seed (the default), or a
 * run's checkpoint (--checkpoint DIR), weights and Adam's state. It matters because the fused kernels skip the
 * work of ReLU-dead units, and training kills many: on 2026-11-30 (AMD EPYC, batch 128) points started from the
 * checkpoint of the default 10-epoch tutorial run ran at 1.2–1.7× the images/s of points from fresh weights, in
 * interleaved runs. PyTorch's dense step does not depend on the weights.
 */
import { existsSync } from 'node:fs';
import { checkpointPath, readCheckpoint } from '../src/checkpoint/checkpoint.ts';
import type { ModelDefinition } from '../src/model/model-definition.ts';
import { initialParameters, parameterCount } from '../src/model/parameter-vector.ts';
import { type AdamState, newAdamState } from '../src/train/adam.ts';
import { CheckpointError } from '../src/errors/index.ts';
import { BenchError } from './bench-error.ts';

export interface StartingPoint {
  readonly weights: Float32Array;
  readonly adam: AdamState;
  /** For the report: "fresh weights (seed 1)" or which checkpoint, after how much training. */
  readonly description: string;
}

export function freshStart(model: ModelDefinition, seed: number): StartingPoint {
  return { weights: initialParameters(model, seed), adam: newAdamState(parameterCount(model)), description: `fresh weights (seed ${seed})` };
}

/** The checkpoint in `outDir`, which must be a run of `model`; BenchError otherwise. */
export async function checkpointStart(outDir: string, model: ModelDefinition): Promise<StartingPoint> {
  if (!existsSync(checkpointPath(outDir))) {
    throw new BenchError(`--checkpoint: no ${checkpointPath(outDir)}. Pass the --out folder of a \`npm run coordinator\` run of the ${model.name} model.`);
  }
  let checkpoint;
  try {
    checkpoint = await readCheckpoint(outDir);
  } catch (error) {
    // Its first sentence says what is wrong; the advice after it is about --resume.
    if (error instanceof CheckpointError) throw new BenchError(`--checkpoint: ${error.message.split(/(?<=\.) /)[0]}`, { cause: error });
    throw error;
  }
  const { settings, progress } = checkpoint;
  if (settings.model !== model.name || checkpoint.weights.length !== parameterCount(model)) {
    throw new BenchError(
      `--checkpoint: ${checkpointPath(outDir)} is a run of the ${settings.model} model (${checkpoint.weights.length} weights); ` +
        `the benchmark trains the ${model.name} model (${parameterCount(model)} weights).`,
    );
  }
  if (!checkpoint.adam) throw new BenchError(`--checkpoint: ${checkpointPath(outDir)} is a run with --optimizer ${settings.optimizer}; the benchmark trains with Adam.`);
  return {
    weights: checkpoint.weights,
    adam: checkpoint.adam,
    description: `the checkpoint in ${outDir} (after ${progress.epochsDone} epoch${progress.epochsDone === 1 ? '' : 's'}, ${progress.globalStep} steps)`,
  };
}
