// A decoded image of any size → the network's input: 32×32 RGB floats in [0, 1], NHWC.
import type { DecodedImage } from './decode-image.ts';

/**
 * How a non-square image becomes square: 'crop' keeps the largest centred square (nothing is distorted, the
 * edges of the longer side are cut off); 'stretch' squeezes the whole image (nothing is lost, shapes distort).
 */
export type FitMode = 'crop' | 'stretch';
export const FIT_MODES: readonly FitMode[] = ['crop', 'stretch'];

/** The part of the image that is resized, in source pixels (may start at half a pixel when centring). */
export interface SourceRegion {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export function fitRegion(width: number, height: number, fit: FitMode): SourceRegion {
  if (fit === 'stretch' || width === height) return { x: 0, y: 0, width, height };
  const side = Math.min(width, height);
  return { x: (width - side) / 2, y: (height - side) / 2, width: side, height: side };
}

/**
 * Resizes by area averaging: each output pixel is the mean of the source area it covers, every source pixel
 * weighted by how much of it lies inside (exact for any scale, not only whole-number ones; an image already
 * 32×32 passes through unchanged; one smaller than 32×32 is enlarged with square pixels, blended where an
 * output pixel straddles two). Transparent pixels are put on white first. Returns `size`×`size`×3 floats,
 * value/255, the scaling the network was trained with.
 */
export function resizeToInput(image: DecodedImage, size: number, fit: FitMode): Float32Array {
  const region = fitRegion(image.width, image.height, fit);
  const xs = coverage(region.x, region.width, size, image.width);
  const ys = coverage(region.y, region.height, size, image.height);
  const rgba = image.rgba;
  // Horizontal pass, only over the rows the region touches: rows[sy][ox][c].
  const rows = new Map<number, Float64Array>();
  for (const taps of ys) {
    for (const { index: sy } of taps) {
      if (rows.has(sy)) continue;
      const row = new Float64Array(size * 3);
      const base = sy * image.width;
      xs.forEach((xTaps, ox) => {
        let r = 0, g = 0, b = 0;
        for (const { index: sx, weight } of xTaps) {
          const p = (base + sx) * 4;
          r += onWhite(rgba[p], rgba[p + 3]) * weight;
          g += onWhite(rgba[p + 1], rgba[p + 3]) * weight;
          b += onWhite(rgba[p + 2], rgba[p + 3]) * weight;
        }
        row[ox * 3] = r;
        row[ox * 3 + 1] = g;
        row[ox * 3 + 2] = b;
      });
      rows.set(sy, row);
    }
  }
  const out = new Float32Array(size * size * 3);
  ys.forEach((yTaps, oy) => {
    for (let k = 0; k < size * 3; k++) {
      let v = 0;
      for (const { index: sy, weight } of yTaps) v += rows.get(sy)![k] * weight;
      out[oy * size * 3 + k] = v / 255;
    }
  });
  return out;
}

interface Tap {
  readonly index: number;
  /** Share of the output pixel's span that source pixel `index` covers (the taps of one output pixel sum to 1). */
  readonly weight: number;
}

/** For each of `size` output pixels along one axis, the source pixels under it and their weights. */
function coverage(start: number, span: number, size: number, limit: number): Tap[][] {
  const step = span / size;
  return Array.from({ length: size }, (_, o) => {
    const a = start + o * step;
    const b = start + (o + 1) * step;
    const taps: Tap[] = [];
    for (let i = Math.floor(a); i < Math.min(limit, Math.ceil(b)); i++) {
      const overlap = Math.min(b, i + 1) - Math.max(a, i);
      if (overlap > 1e-12) taps.push({ index: i, weight: overlap / step });
    }
    return taps;
  });
}

/** A channel value `v` with alpha `a` (0–255) seen on white. */
function onWhite(v: number, a: number): number {
  return a === 255 ? v : (v * a + 255 * (255 - a)) / 255;
}
