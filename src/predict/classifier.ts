// A saved model, run in this process: weights in, logits out for one image at a time.
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendChoice, type BackendName } from '../compute/backend.ts';
import type { ModelDefinition } from '../model/model-definition.ts';
import { loadLayersModelWeights } from '../model/layers-model-files.ts';
import { parameterSlices } from '../model/parameter-vector.ts';

export class Classifier {
  readonly model: ModelDefinition;
  readonly backend: BackendName;
  private readonly params: tf.Tensor[];

  private constructor(model: ModelDefinition, backend: BackendName, params: tf.Tensor[]) {
    this.model = model;
    this.backend = backend;
    this.params = params;
  }

  /** Loads `<dir>/model.json` + weights.bin (ModelFormatError when absent or damaged) and starts a tfjs backend. */
  static async load(dir: string, backend: BackendChoice = 'auto'): Promise<Classifier> {
    const { model, weights } = await loadLayersModelWeights(dir);
    // By the model's row of auto's table (fused excluded: a Classifier runs tfjs ops): wasm for the tutorial net.
    const name = await initBackend(backend, { model: model.name });
    const params = parameterSlices(model).map(({ spec, offset, size }) =>
      tf.tensor(weights.slice(offset, offset + size), spec.shape as number[], 'float32'),
    );
    return new Classifier(model, name, params);
  }

  /** The model's input size, [height, width, channels]. */
  get inputShape(): readonly [number, number, number] {
    return this.model.inputShape;
  }

  /** Logits (one per class) for one image given as NHWC floats in [0, 1] of the model's input shape. */
  logits(pixels: Float32Array): Float32Array {
    const [h, w, c] = this.model.inputShape;
    if (pixels.length !== h * w * c) throw new RangeError(`Classifier.logits needs ${h * w * c} values (${h}×${w}×${c}), got ${pixels.length}.`);
    return tf.tidy(() => this.model.logits(this.params, tf.tensor4d(pixels, [1, h, w, c])).dataSync() as Float32Array).slice();
  }

  dispose(): void {
    for (const p of this.params) p.dispose();
  }
}
