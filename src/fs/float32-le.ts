/**
 * Float32 values as little-endian bytes, the byte order of every file this project writes (weights.bin,
 * checkpoint.bin): on a little-endian host (every machine we know) a view of the same memory, no copy.
 */
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Writes `data` as little-endian float32 into `out` at byte `at`. */
export function writeFloat32LE(out: Uint8Array, at: number, data: Float32Array): void {
  if (LITTLE_ENDIAN_HOST) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    return;
  }
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < data.length; i++) view.setFloat32(at + i * 4, data[i], true);
}

/** `length` little-endian float32 values from byte `at` of `bytes`, in a fresh array. */
export function readFloat32LE(bytes: Uint8Array, at: number, length: number): Float32Array {
  const out = new Float32Array(length);
  if (LITTLE_ENDIAN_HOST) {
    new Uint8Array(out.buffer).set(bytes.subarray(at, at + length * 4));
    return out;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < length; i++) out[i] = view.getFloat32(at + i * 4, true);
  return out;
}

/** `values` as little-endian bytes (a view of their memory on a little-endian host). */
export function float32ToLittleEndian(values: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN_HOST) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.length * 4);
  writeFloat32LE(out, 0, values);
  return out;
}
