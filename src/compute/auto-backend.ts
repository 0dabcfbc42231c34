/**
 * What `--backend auto` picks, per model: the backends in the order measured fastest for that model (training
 * images/s, `npm run bench` and the README's Speed section), and why. auto takes the first one available here:
 * 'fused' where the model has a fused module, 'node' where @tensorflow/tfjs-node is installed and loads, 'wasm'
 * always (then 'cpu' as a last resort, with a warning). A model without a row gets the default.
 *
 * To add a model: measure it on every backend it runs on (same run, interleaved), add a row, and keep `why` to
 * the figures that decided it.
 */
import { createRequire } from 'node:module';
import type { BackendName } from './backend.ts';
import { hasFusedImplementation } from './fused/fused-tutorial-cnn.ts';

export interface AutoRule {
  /** Fastest first. */
  readonly order: readonly BackendName[];
  /** One clause for the start-up banner: what the measurement showed. */
  readonly why: string;
}

export const AUTO_RULES: Readonly<Record<string, AutoRule>> = {
  // 2 workers, 2026-12-04: batch 10 fused 7,844 / wasm 1,726 / node 970 images/s; batch 128 25,608 / 5,491 / 3,619.
  tutorial: {
    order: ['fused', 'wasm', 'node'],
    why: 'fused trains it 4-8x faster than wasm, 7-8x faster than node',
  },
  // 2 workers, batch 128, 2026-12-05, with wasm's Winograd kernels: node 187, 211 / wasm 151, 177 images/s (2 interleaved
  // rounds, load 5-8; before those kernels node 109 / wasm 57).
  'bn-cnn': {
    order: ['node', 'wasm'],
    why: 'node trains it 1.2x faster than wasm at batch 128',
  },
};

/** Models nobody has measured yet: native TensorFlow (oneDNN, the CPU's full vector width) before WebAssembly's 128-bit SIMD. */
export const DEFAULT_AUTO_RULE: AutoRule = {
  order: ['node', 'wasm'],
  why: 'not measured for this model: native TensorFlow first',
};

export function autoRule(model: string | undefined): AutoRule {
  return (model !== undefined ? AUTO_RULES[model] : undefined) ?? DEFAULT_AUTO_RULE;
}

/**
 * The model's row less what cannot run here: fused without a module for the model, node without tfjs-node
 * installed (checked without loading it: a pool's threads load it). wasm is always a candidate, last if not listed.
 */
export function autoCandidates(model: string): BackendName[] {
  const order = autoRule(model).order.filter((b) => (b !== 'fused' || hasFusedImplementation(model)) && (b !== 'node' || nativeBackendInstalled()));
  return order.includes('wasm') ? order : [...order, 'wasm'];
}

/** The banner's reason for what 'auto' chose: the model's rule, and why faster ones were passed over. */
export function autoReason(model: string, chosen: BackendName): string {
  const rule = autoRule(model);
  const passed = rule.order.slice(0, Math.max(0, rule.order.indexOf(chosen))).map((b) =>
    b === 'fused' ? 'fused has no module for it' : b === 'node' && !nativeBackendInstalled() ? 'node is not installed' : `${b} did not start`);
  return `auto, fastest measured for ${model}: ${rule.why}${passed.length > 0 ? `; ${passed.join(', ')}` : ''}`;
}

/** True when @tensorflow/tfjs-node is installed (resolvable). */
export function nativeBackendInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
}
