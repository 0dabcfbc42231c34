/**
 * Which algorithm the project's wasm kernels use for a stride-1 convolution: a fixed rule on the shape, never a
 * timing. The trainer promises byte-identical weights on any machine, and Winograd rounds differently from a direct
 * convolution, so the choice must not depend on the machine; the rule below was chosen from bench/kernel-bench.ts's
 * measurements (AMD EPYC Zen 4, 2 cores, December 2026; the table is in the README's Speed section).
 *
 * - 'winograd-f4': Winograd F(4×4, 3×3) (./winograd-conv2d-wasm.ts, ./winograd-conv2d-backprop-filter-wasm.ts), for
 *   3×3 filters with at least MIN_WINOGRAD_CHANNELS channels on both sides and outputs of at least 3×3. It
 *   multiplies 4× less than a direct convolution (fewer where the last row or column of 4×4 tiles is cut off, as
 *   at 31×31, 15×15, 7×7 and 3×3) and measured 1.3–3× faster than 'direct' on every such layer of bn-cnn,
 *   airbench93 and airbench94, in all three directions. F(2×2, 3×3) (rounding as small as a direct
 *   convolution's) measured between the two and is not chosen.
 * - 'direct': the register-tiled GEMM of ./conv2d-wasm.ts and ./conv2d-backprop-filter-wasm.ts, for everything else:
 *   few channels (the first layer's 3 input channels leave Winograd's GEMMs too short), other filter sizes, and
 *   outputs smaller than a tile.
 */
export type Conv2dAlgorithm = 'direct' | 'winograd-f2' | 'winograd-f4';

/** Fewer channels than this on either side of a 3×3 convolution: 'direct'. */
export const MIN_WINOGRAD_CHANNELS = 16;

/**
 * The algorithm for a stride-1, dilation-1 correlation with a kh×kw filter, `cin` input and `cout` output channels
 * (for the input gradient: the layer's output and input channels) and an oh×ow output. The same for all three
 * directions of one layer.
 */
export function conv2dAlgorithm(kh: number, kw: number, cin: number, cout: number, oh: number, ow: number): Conv2dAlgorithm {
  if (kh !== 3 || kw !== 3) return 'direct';
  if (Math.min(cin, cout) < MIN_WINOGRAD_CHANNELS) return 'direct';
  if (oh < 3 || ow < 3) return 'direct';
  return 'winograd-f4';
}
