import type { ModelDefinition, ParameterSpec } from './model-definition.ts';
import { SeededRandom, STREAM_INIT } from '../random/seeded-random.ts';
import type { ImageSet } from '../data/cifar10-dataset.ts';
import { diracInit } from './dirac-init.ts';
import { whiteningInit } from './whitening-init.ts';

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
 * A model's starting weights, as its tensors' `init` says (ParameterInit), in parameter order from the run's
 * seed. The default is PyTorch's: Conv2d and Linear weights (kaiming_uniform with a=√5) and biases both uniform
 * in ±1/√fan_in; BatchNorm2d's gamma and running variance 1, beta and running mean 0 (constants draw nothing,
 * so they never shift the other draws). A whitening init needs the training images (`train`).
 */
export function initialParameters(model: ModelDefinition, seed: number, data: { train?: ImageSet } = {}): Float32Array {
  const rng = new SeededRandom(seed, STREAM_INIT);
  const out = new Float32Array(parameterCount(model));
  for (const { spec, offset, size } of parameterSlices(model)) {
    const init = spec.init ?? 'fan-in';
    const values = out.subarray(offset, offset + size);
    if (init === 'ones') values.fill(1);
    else if (init === 'zeros') continue;
    else if (init === 'fan-in' || init === 'dirac') {
      const bound = 1 / Math.sqrt(spec.fanIn);
      for (let i = 0; i < size; i++) values[i] = (rng.nextFloat() * 2 - 1) * bound;
      if (init === 'dirac') diracInit(values, spec.shape);
    } else if ('constant' in init) {
      if (init.constant.length !== size) throw new RangeError(`${spec.name}: a constant init of ${init.constant.length} values for ${size} entries.`);
      values.set(init.constant);
    } else {
      const { images, eps, mean, std } = init.whitening;
      const train = data.train;
      if (!train || train.count < images || train.images.length < images * 3072) {
        throw new RangeError(`${spec.name}: its whitening init needs the first ${images} training images' pixels, and has ${train?.count ?? 0}.`);
      }
      values.set(whiteningInit(train.images, images, eps, mean, std).kernel);
    }
  }
  return out;
}
