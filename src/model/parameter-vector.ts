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

/** Trained by the optimizer (not a running statistic). */
export function isTrainable(spec: ParameterSpec): boolean {
  return (spec.kind ?? 'parameter') === 'parameter';
}

/** Entries of the flat vector that are trained (the rest is batch norm's running statistics). */
export function trainableCount(model: ModelDefinition): number {
  return parameterSlices(model).reduce((n, { spec, size }) => n + (isTrainable(spec) ? size : 0), 0);
}

/**
 * PyTorch's default initialisation: Conv2d and Linear weights (kaiming_uniform with a=√5) and biases both
 * uniform in ±1/√fan_in, drawn in parameter order from the run's seed; BatchNorm2d's gamma and running
 * variance 1, beta and running mean 0 (constants draw nothing, so they never shift the other draws).
 */
export function initialParameters(model: ModelDefinition, seed: number): Float32Array {
  const rng = new SeededRandom(seed, STREAM_INIT);
  const out = new Float32Array(parameterCount(model));
  for (const { spec, offset, size } of parameterSlices(model)) {
    const init = spec.init ?? 'fan-in';
    if (init === 'ones') out.fill(1, offset, offset + size);
    if (init !== 'fan-in') continue;
    const bound = 1 / Math.sqrt(spec.fanIn);
    for (let i = 0; i < size; i++) out[offset + i] = (rng.nextFloat() * 2 - 1) * bound;
  }
  return out;
}
