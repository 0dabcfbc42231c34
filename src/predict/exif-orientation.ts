// Cameras store a photo as the sensor saw it and say in EXIF tag 0x0112 how to turn it for viewing; a
// classifier must see it the way a person does, so JPEG pixels are turned accordingly.

/** The orientation (1–8) in a JPEG's EXIF APP1 segment, or 1 (as stored) when there is none or it is unreadable. */
export function jpegExifOrientation(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 2; // after SOI
  while (at + 4 <= bytes.length && bytes[at] === 0xff) {
    const marker = bytes[at + 1];
    if (marker === 0xda || marker === 0xd9) break; // start of scan / end: no more metadata
    const length = view.getUint16(at + 2);
    if (length < 2) break;
    const start = at + 4;
    if (marker === 0xe1 && length >= 16 && ascii(bytes, start, 6) === 'Exif\0\0') {
      return orientationFromTiff(view, start + 6, Math.min(bytes.length, at + 2 + length)) ?? 1;
    }
    at += 2 + length;
  }
  return 1;
}

function orientationFromTiff(view: DataView, tiff: number, end: number): number | undefined {
  if (tiff + 8 > end) return undefined;
  const order = String.fromCharCode(view.getUint8(tiff), view.getUint8(tiff + 1));
  if (order !== 'II' && order !== 'MM') return undefined;
  const little = order === 'II';
  const u16 = (p: number) => view.getUint16(p, little);
  const u32 = (p: number) => view.getUint32(p, little);
  if (u16(tiff + 2) !== 42) return undefined;
  const ifd = tiff + u32(tiff + 4);
  if (ifd + 2 > end) return undefined;
  const entries = u16(ifd);
  for (let i = 0; i < entries; i++) {
    const entry = ifd + 2 + i * 12;
    if (entry + 12 > end) return undefined;
    if (u16(entry) === 0x0112 && u16(entry + 2) === 3) {
      const value = u16(entry + 8);
      return value >= 1 && value <= 8 ? value : undefined;
    }
  }
  return undefined;
}

function ascii(bytes: Uint8Array, start: number, length: number): string {
  return String.fromCharCode(...bytes.subarray(start, start + length));
}

export interface RgbaImage {
  readonly width: number;
  readonly height: number;
  readonly rgba: Uint8Array;
}

/**
 * The image turned as EXIF orientation `o` asks: 1 as stored, 2 mirrored, 3 turned 180°, 4 flipped, 5 mirrored
 * and turned 90° anticlockwise (transposed), 6 turned 90° clockwise, 7 transverse, 8 turned 90° anticlockwise.
 */
export function applyExifOrientation(image: RgbaImage, o: number): RgbaImage {
  if (o === 1 || o < 1 || o > 8) return image;
  const { width: w, height: h, rgba } = image;
  const swap = o >= 5;
  const outW = swap ? h : w;
  const outH = swap ? w : h;
  const out = new Uint8Array(rgba.length);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      // (sx, sy): the stored pixel that shows at (x, y).
      let sx: number;
      let sy: number;
      switch (o) {
        case 2: sx = w - 1 - x; sy = y; break;
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;
        case 4: sx = x; sy = h - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = h - 1 - x; break;
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;
        default: sx = w - 1 - y; sy = x; break; // 8
      }
      const from = (sy * w + sx) * 4;
      const to = (y * outW + x) * 4;
      out[to] = rgba[from];
      out[to + 1] = rgba[from + 1];
      out[to + 2] = rgba[from + 2];
      out[to + 3] = rgba[from + 3];
    }
  }
  return { width: outW, height: outH, rgba: out };
}
