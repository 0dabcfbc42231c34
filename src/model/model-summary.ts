import type { ModelDefinition } from './model-definition.ts';
import { parameterCount, trainableCount } from './parameter-vector.ts';

/** The layer table of `--summary`, laid out as torchsummary prints it. */
export function formatSummary(model: ModelDefinition): string {
  const rows = model.summary();
  const rule = '-'.repeat(64);
  const lines = [rule, `${'Layer (type)'.padStart(25)}${'Output Shape'.padStart(25)}${'Param #'.padStart(14)}`, '='.repeat(64)];
  for (const row of rows) {
    lines.push(`${`${row.name} (${row.type})`.padStart(25)}${`[${row.outputShape.join(', ')}]`.padStart(25)}${row.parameters.toLocaleString('en-US').padStart(14)}`);
  }
  const total = parameterCount(model);
  const trainable = trainableCount(model);
  // As Keras counts them: batch norm's running statistics are non-trainable parameters.
  lines.push('='.repeat(64), `Total params: ${total.toLocaleString('en-US')}`, `Trainable params: ${trainable.toLocaleString('en-US')}`,
    `Non-trainable params: ${(total - trainable).toLocaleString('en-US')}`, `Parameters size (MB): ${((total * 4) / 2 ** 20).toFixed(2)}`, rule);
  return lines.join('\n');
}
