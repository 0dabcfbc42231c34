import type { ModelDefinition, ParameterSpec } from './model-definition.ts';
import { SeededRandom, STREAM_INIT } from '../random/seeded-random.ts';

/** Where each parameter tensor lives inside the model's one flat Float32Array. */
export interface ParameterSlice {
  readonly spec: ParameterSpec;
  readonly offset: number;
  readonly size: number;
}

export function parameterSlices(model: ModelDefinition): ParameterSlice[] {
  let offset = 0;
  return model.parameters.map((spec) => {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const slice = { spec, offset, size };
    offset += size;
    return slice;
  });
}

export function parameterCount(model: ModelDefinition): number {
  return model.parameters.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * PyTorch's default initialisation for Conv2d and Linear: weights (kaiming_uniform with a=√5) and biases
 * both uniform in ±1/√fan_in. Drawn in parameter order from the run's seed.
 */
export function initialParameters(model: ModelDefinition, seed: number): Float32Array {
  const rng = new SeededRandom(seed, STREAM_INIT);
  const out = new Float32Array(parameterCount(model));
  for (const { spec, offset, size } of parameterSlices(model)) {
    const bound = 1 / Math.sqrt(spec.fanIn);
    for (let i = 0; i < size; i++) out[offset + i] = (rng.nextFloat() * 2 - 1) * bound;
  }
  return out;
}
