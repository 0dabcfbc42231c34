import type { ModelDefinition } from '../model/model-definition.ts';
import { saveLayersModel } from '../model/layers-model-files.ts';
import { crashPoint } from '../testing/crash-point.ts';
import { type EpochMetrics, writeMetrics } from './metrics-log.ts';

/**
 * The files an epoch end leaves in --out besides the checkpoint: the model files (model.json + weights.bin) of
 * the epoch's weights and metrics.jsonl with every finished epoch's line. Both are derived from the checkpoint
 * written just before (its weights and its history), so a process killed between the writes loses nothing:
 * --resume calls this again before it trains. `weights` undefined (a checkpoint taken in the middle of an
 * epoch, whose weights are not an epoch's) leaves the model files of the last finished epoch as they are.
 */
export async function writeEpochOutputs(
  outDir: string, model: ModelDefinition, weights: Float32Array | undefined, history: readonly EpochMetrics[],
): Promise<void> {
  if (weights && history.length > 0) {
    await saveLayersModel(outDir, model, weights);
    crashPoint('epoch-end:after-model-files');
  }
  await writeMetrics(outDir, history);
  crashPoint('epoch-end:after-metrics');
}
