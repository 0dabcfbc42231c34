// STUB — owned by the data helper; signatures are the contract.
/** 32×32 RGB, stored NHWC as bytes. */
export const IMAGE_HEIGHT = 32;
export const IMAGE_WIDTH = 32;
export const IMAGE_CHANNELS = 3;
export const IMAGE_BYTES = IMAGE_HEIGHT * IMAGE_WIDTH * IMAGE_CHANNELS;

/** A set of images held as bytes, NHWC (pixel (y, x) channel c of image i at i*3072 + (y*32 + x)*3 + c). */
export interface ImageSet {
  readonly count: number;
  /** count × 3072 bytes, backed by a SharedArrayBuffer so worker threads read it without a copy. */
  readonly images: Uint8Array;
  /** count labels, 0–9, backed by a SharedArrayBuffer. */
  readonly labels: Uint8Array;
}

export interface Cifar10Dataset {
  readonly dir: string;
  /** batches.meta.txt, line i = name of label i. */
  readonly classNames: readonly string[];
  readonly train: ImageSet;
  readonly test: ImageSet;
  /** Hex SHA-256 over the files' bytes (all of them, whatever the limits) — identifies the data set. */
  readonly fingerprint: string;
}
