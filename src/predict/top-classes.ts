// From logits to what a person reads: probabilities (softmax) and the most likely classes.

/** softmax(logits), computed in float64 with the largest logit subtracted first (no overflow). */
export function softmax(logits: ArrayLike<number>): number[] {
  const values = Array.from(logits);
  const max = Math.max(...values);
  const exps = values.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

export interface RankedClass {
  readonly index: number;
  readonly name: string;
  readonly probability: number;
}

/** The `n` most probable classes, most probable first (a tie keeps class order). */
export function topClasses(probabilities: readonly number[], names: readonly string[], n: number): RankedClass[] {
  return probabilities
    .map((probability, index) => ({ index, name: names[index] ?? `class ${index}`, probability }))
    .sort((a, b) => b.probability - a.probability || a.index - b.index)
    .slice(0, Math.max(0, n));
}
