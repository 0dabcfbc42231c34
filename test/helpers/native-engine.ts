import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Why the node backend's tests cannot run here, or null when they can: @tensorflow/tfjs-node must be installed
 * (`npm run native:install` on our machines) and load in a fresh process. Checked in a child so that a broken
 * install fails there, not in the test process.
 */
export function nativeUnavailable(): string | null {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node');
  } catch {
    return '@tensorflow/tfjs-node is not installed (npm run native:install puts it in place from a TensorFlow wheel)';
  }
  try {
    execFileSync(process.execPath, ['-e', "require('@tensorflow/tfjs-node')"], {
      cwd: root, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' }, stdio: 'pipe', timeout: 60_000,
    });
    return null;
  } catch (error) {
    const lines = String((error as { stderr?: Buffer }).stderr ?? error).split('\n').filter((l) => /Error/.test(l));
    return `@tensorflow/tfjs-node is installed but does not load (${lines[0]?.trim() ?? 'no message'}); run npm run native:install`;
  }
}
