// Which name each output of the network stands for.
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** CIFAR-10's classes in label order (batches.meta.txt of the official data set). */
export const CIFAR10_CLASS_NAMES: readonly string[] = [
  'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck',
];

/**
 * The class names for a model folder: those its eval.json recorded (read from the data set it was evaluated
 * on) when there are `classes` of them, else CIFAR-10's, else `class 0`, `class 1`, ….
 */
export async function classNamesFor(modelDir: string, classes: number): Promise<readonly string[]> {
  try {
    const json: unknown = JSON.parse(await readFile(path.join(modelDir, 'eval.json'), 'utf8'));
    const names = (json as { classNames?: unknown }).classNames;
    if (Array.isArray(names) && names.length === classes && names.every((n) => typeof n === 'string' && n !== '')) return names;
  } catch {
    // no evaluation beside the model (or an unreadable one): fall back to the standard names
  }
  if (classes === CIFAR10_CLASS_NAMES.length) return CIFAR10_CLASS_NAMES;
  return Array.from({ length: classes }, (_, i) => `class ${i}`);
}
