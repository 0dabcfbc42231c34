// A user's image file → RGBA pixels. PNG (any bit depth, palette, grey, alpha, interlace: pngjs) and JPEG
// (baseline and progressive: jpeg-js) are recognised by their first bytes, whatever the file is named.
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { ImageDecodeError } from '../errors/index.ts';
import { applyExifOrientation, jpegExifOrientation } from './exif-orientation.ts';

export type ImageFormat = 'PNG' | 'JPEG';

export interface DecodedImage {
  readonly format: ImageFormat;
  readonly width: number;
  readonly height: number;
  /** width × height × 4 bytes, RGBA, top row first, as the image is meant to be seen (JPEG EXIF rotation applied). */
  readonly rgba: Uint8Array;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Larger images are refused rather than decoded into gigabytes (a 100-megapixel RGBA image is 400 MB). */
export const MAX_MEGAPIXELS = 100;

export function sniffFormat(bytes: Uint8Array): ImageFormat | null {
  if (PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return 'PNG';
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'JPEG';
  return null;
}

/** Decodes `bytes` (the contents of `file`, which is named in errors); throws ImageDecodeError. */
export function decodeImage(bytes: Uint8Array, file: string): DecodedImage {
  const format = sniffFormat(bytes);
  if (format === null) {
    const what = bytes.length === 0 ? 'is empty' : `is neither a PNG nor a JPEG image (it starts with ${describeStart(bytes)})`;
    throw new ImageDecodeError(`${file} ${what}; predict reads PNG and JPEG files.`);
  }
  let image: DecodedImage;
  try {
    image = format === 'PNG' ? decodePng(bytes) : decodeJpeg(bytes);
  } catch (error) {
    throw new ImageDecodeError(`${file} looks like a ${format} file but cannot be decoded: ${plainReason(reason(error))}.`, { cause: error });
  }
  if (image.width < 1 || image.height < 1 || image.rgba.length !== image.width * image.height * 4) {
    throw new ImageDecodeError(`${file}: the ${format} decoder returned no usable pixels (${image.width}×${image.height}).`);
  }
  return image;
}

function decodePng(bytes: Uint8Array): DecodedImage {
  const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  if (png.width * png.height > MAX_MEGAPIXELS * 1e6) throw new Error(`${png.width}×${png.height} is over ${MAX_MEGAPIXELS} megapixels`);
  return { format: 'PNG', width: png.width, height: png.height, rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
}

function decodeJpeg(bytes: Uint8Array): DecodedImage {
  const raw = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: MAX_MEGAPIXELS, maxMemoryUsageInMB: 1024 });
  const oriented = applyExifOrientation({ width: raw.width, height: raw.height, rgba: raw.data }, jpegExifOrientation(bytes));
  return { format: 'JPEG', ...oriented };
}

function describeStart(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 8);
  const printable = [...head].every((b) => b >= 0x20 && b < 0x7f);
  return printable ? JSON.stringify(Buffer.from(head).toString('latin1')) : `bytes ${[...head].map((b) => b.toString(16).padStart(2, '0')).join(' ')}`;
}

/** The decoders' messages (pngjs: "There are some read requests waitng on finished stream") in our words. */
function plainReason(message: string): string {
  if (/read requests waitng|ran out of data|unexpected end|end of (input|data)|truncated|premature/i.test(message)) {
    return 'the file ends before its image data does (it is truncated, e.g. an incomplete download or copy)';
  }
  if (/crc error|checksum/i.test(message)) return 'a checksum in the file does not match its data (the file is damaged)';
  return `its data is damaged (the decoder says: ${message.replace(/\.$/, '')})`;
}

function reason(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0];
}
