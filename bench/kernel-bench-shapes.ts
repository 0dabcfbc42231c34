/**
 * The convolution layers `npm run bench:kernels` times: every 3×3 stride-1 'same' convolution (and the first
 * layers) of the networks users train, at the shard sizes they run with.
 *
 * - bn-cnn (src/model/bn-cnn.ts): 32/64/128 channels, 32×32 down to 8×8; batch 128 over 2 workers = shards of 64.
 * - airbench94 (Keller Jordan's CIFAR-10 speedrun network): a 2×2 'valid' whitening convolution 3→24, then 3×3
 *   'same' convolutions 24→64 at 31×31, 64→64 at 15×15, 64→256 at 15×15, 256→256 at 7×7 (twice) and 256→256 at
 *   3×3; batches of 1024 cut into shards (128 here).
 * - airbench93: the same with widths 64/128/128.
 */
export interface ConvShape {
  readonly network: string;
  readonly layer: string;
  /** Images in the shard. */
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly cin: number;
  readonly cout: number;
  readonly k: number;
  readonly pad: 'same' | 'valid';
}

export const NETWORKS = ['bn-cnn', 'airbench94', 'airbench93'] as const;
export type NetworkName = (typeof NETWORKS)[number];

/** Default shard size per network. */
export const DEFAULT_SHARD: Readonly<Record<NetworkName, number>> = { 'bn-cnn': 64, airbench94: 128, airbench93: 128 };

function airbench(network: NetworkName, n: number, widths: readonly [number, number, number]): ConvShape[] {
  const [a, b, c] = widths;
  const s = (layer: string, size: number, cin: number, cout: number): ConvShape => ({ network, layer, n, h: size, w: size, cin, cout, k: 3, pad: 'same' });
  return [
    { network, layer: 'whiten 2×2 valid', n, h: 32, w: 32, cin: 3, cout: 24, k: 2, pad: 'valid' },
    s('block1 conv1', 31, 24, a),
    s('block1 conv2', 15, a, a),
    s('block2 conv1', 15, a, b),
    s('block2 conv2', 7, b, b),
    s('block3 conv1', 7, b, c),
    s('block3 conv2', 3, c, c),
  ];
}

/** The layers of `network` with shards of `n` images. */
export function networkShapes(network: NetworkName, n = DEFAULT_SHARD[network]): ConvShape[] {
  if (network === 'bn-cnn') {
    const s = (layer: string, size: number, cin: number, cout: number): ConvShape => ({ network, layer, n, h: size, w: size, cin, cout, k: 3, pad: 'same' });
    return [s('conv1', 32, 3, 32), s('conv2', 32, 32, 32), s('conv3', 16, 32, 64), s('conv4', 16, 64, 64), s('conv5', 8, 64, 128)];
  }
  return airbench(network, n, network === 'airbench94' ? [64, 256, 256] : [64, 128, 128]);
}

/** The output [n, oh, ow, cout] of a stride-1 convolution. */
export function outputShape(s: ConvShape): [number, number, number, number] {
  const shrink = s.pad === 'same' ? 0 : s.k - 1;
  return [s.n, s.h - shrink, s.w - shrink, s.cout];
}

/** Zero padding (top, left) of the input. */
export function padding(s: ConvShape): { top: number; left: number } {
  const p = s.pad === 'same' ? Math.floor((s.k - 1) / 2) : 0;
  return { top: p, left: p };
}

/** 2 × the multiply-adds of the direct convolution: the same count for all three directions. */
export function directFlops(s: ConvShape): number {
  const [n, oh, ow, cout] = outputShape(s);
  return 2 * n * oh * ow * cout * s.cin * s.k * s.k;
}

/** A key for shapes that are the same convolution (airbench93 and 94 share some layers). */
export function shapeKey(s: ConvShape): string {
  return `${s.n}×${s.h}×${s.w}×${s.cin}→${s.cout} k${s.k} ${s.pad}`;
}
