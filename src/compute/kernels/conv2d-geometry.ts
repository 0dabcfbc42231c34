/**
 * Attribute parsing shared by the project's own wasm convolution kernels (./conv2d-wasm.ts,
 * ./conv2d-backprop-filter-wasm.ts), which handle stride-1, dilation-1, zero-padded NHWC convolutions only.
 */

/** Whether a strides / dilations attribute is 1 everywhere (absent counts as 1). */
export function isOnes(v: number | readonly number[] | undefined): boolean {
  if (v === undefined) return true;
  if (typeof v === 'number') return v === 1;
  return v.every((s) => s === 1);
}

/** Whether a dataFormat attribute means NHWC (absent counts as NHWC). */
export function isNhwc(dataFormat: unknown): boolean {
  return dataFormat === undefined || dataFormat === 'NHWC';
}

/**
 * Spatial zero padding [top, bottom, left, right] of a stride-1 convolution of x (`xShape`, NHWC) with a
 * filter of `filterShape` [kh, kw, ...], or null when `pad` is not one ('valid', 'same', a non-negative
 * integer, or explicit [[0, 0], [top, bottom], [left, right], [0, 0]]). 'same' needs the filter shape.
 */
export function stride1Padding(pad: unknown, xShape: readonly number[], filterShape: readonly number[] | undefined): number[] | null {
  if (pad === 'valid' || pad === 'VALID') return [0, 0, 0, 0];
  if (typeof pad === 'number' && Number.isInteger(pad) && pad >= 0) return [pad, pad, pad, pad];
  if (Array.isArray(pad)) {
    const flat = pad.flat(2) as unknown[];
    if (flat.length !== 8 || !flat.every((p) => Number.isInteger(p) && (p as number) >= 0)) return null;
    const [n0, n1, top, bottom, left, right, c0, c1] = flat as number[];
    return n0 === 0 && n1 === 0 && c0 === 0 && c1 === 0 ? [top, bottom, left, right] : null;
  }
  if ((pad === 'same' || pad === 'SAME') && filterShape && filterShape.length === 4 && xShape.length === 4) {
    // Stride 1: the output keeps the input's size; the extra row/column (even kernels) goes to the bottom/right.
    const [kh, kw] = filterShape;
    return [Math.floor((kh - 1) / 2), Math.ceil((kh - 1) / 2), Math.floor((kw - 1) / 2), Math.ceil((kw - 1) / 2)];
  }
  return null;
}
