// The report's thumbnails as PNG files (pngjs), and as data URLs an <img> needs no file for.
import { PNG } from 'pngjs';

/** Encodes `rgb` (height rows of width × 3 bytes, top row first) as an 8-bit RGB PNG file. */
export function encodePngRgb(width: number, height: number, rgb: Uint8Array): Buffer {
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`encodePngRgb: the size must be at least 1×1 whole pixels, got ${width}×${height}.`);
  }
  if (rgb.length !== width * height * 3) {
    throw new RangeError(`encodePngRgb: ${width}×${height} RGB needs ${width * height * 3} bytes, got ${rgb.length}.`);
  }
  const png = new PNG({ width, height, colorType: 2, inputColorType: 2, inputHasAlpha: false });
  png.data = Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength);
  return PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false });
}

/** A `data:image/png;base64,…` URL of the PNG, for an <img> that needs no file beside the page. */
export function pngDataUrl(png: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
}
