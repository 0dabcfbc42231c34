import type { ImageSet } from '../../data/cifar10-dataset.ts';
import { FusedTutorialCnn } from '../fused/fused-tutorial-cnn.ts';
import type { Classification, NetworkEngine, TrainingBatch } from './network-engine.ts';

/**
 * The tutorial network on backend 'fused': its whole forward and backward pass as one WebAssembly SIMD module
 * (../fused/), with no tfjs at all. It reads the images as bytes, straight from the set.
 */
export class FusedEngine implements NetworkEngine {
  readonly backend = 'fused' as const;
  private readonly net = FusedTutorialCnn.create();

  constructor(labelSmoothing: number) {
    this.net.setLabelSmoothing(labelSmoothing);
  }

  setWeights(weights: Float32Array): void {
    this.net.setWeights(weights);
  }

  gradient(batch: TrainingBatch, out: Float32Array): void {
    this.net.gradient(batch.set.images, batch.set.labels, batch.set.count, batch.order, out);
  }

  evaluate(set: ImageSet, start: number, end: number): Classification {
    return this.net.evaluate(set.images, set.labels, set.count, start, end);
  }

  dispose(): void {
    // The module's memory goes with the engine.
  }
}
