// Where the CIFAR-10 files live.
import path from 'node:path';

/** The folder used when neither --data nor CIFAR10_DIR says otherwise, relative to the working directory. */
export const DEFAULT_DATA_DIR = 'data/cifar-10-batches-bin';

/**
 * The CIFAR-10 folder: the --data flag if given, else $CIFAR10_DIR if set, else data/cifar-10-batches-bin.
 * Empty strings count as not given. The result is absolute (resolved against the working directory), so
 * messages name the folder unambiguously.
 */
export function resolveDataDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  const chosen = flag !== undefined && flag !== '' ? flag : env.CIFAR10_DIR ? env.CIFAR10_DIR : DEFAULT_DATA_DIR;
  return path.resolve(chosen);
}
