import test from 'ava';
import { ShardComputer } from '../src/compute/shard-computer.ts';
import { tutorialCnn } from '../src/model/tutorial-cnn.ts';
import { parameterCount } from '../src/model/parameter-vector.ts';
import { randomImageSet } from './fixtures/random-image-set.ts';
import { lcgFloats, TORCH_REFERENCE } from './fixtures/recipe-reference-inputs.ts';

const ref = TORCH_REFERENCE.labelSmoothing;
const P = parameterCount(tutorialCnn);

// All weights 0 but the last layer's bias: every image's logits are that bias, whatever its pixels, so the shard's
// loss is Σ_i CE(bias, label_i) and the bias's gradient Σ_i ∂CE/∂logits — what torch computed for the same logits.
for (const backend of ['fused', 'wasm', 'cpu'] as const) {
  test.serial(`${backend}: the shard's summed loss and gradient with label smoothing 0.2 are nn.CrossEntropyLoss(label_smoothing=0.2, reduction='sum')'s`, async (t) => {
    const train = randomImageSet(ref.labels.length, 3);
    train.labels.set(ref.labels);
    const weights = new Float32Array(P);
    weights.set(lcgFloats(10, ref.logitsSeed, ref.logitsScale), P - 10);
    const computer = await ShardComputer.create(tutorialCnn, { train, test: randomImageSet(2, 4) }, backend, {
      recipe: { seed: 1, augmentation: 'none', labelSmoothing: ref.smoothing, stepsPerEpoch: 1 },
    });
    computer.setWeights(weights);
    const result = computer.gradient(Int32Array.from(ref.labels.keys()));
    t.true(Math.abs(result[P] - ref.loss) <= 4e-7 * ref.loss, `loss ${result[P]} vs torch ${ref.loss}`);
    const gradient = result.subarray(P - 10, P);
    for (let c = 0; c < 10; c++) {
      t.true(Math.abs(gradient[c] - ref.logitsGradient[c]) <= 1e-6, `class ${c}: ${gradient[c]} vs torch ${ref.logitsGradient[c]}`);
    }
    t.true(result.subarray(0, P - 10 - 84 * 10).every((g) => g === 0), 'nothing flows past the zero weights');
    computer.dispose();
  });
}
