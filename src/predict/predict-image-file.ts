// One file through the whole path: read → decode → square and resize to 32×32 → network → probabilities.
import { readFile } from 'node:fs/promises';
import { ImageDecodeError } from '../errors/index.ts';
import type { Classifier } from './classifier.ts';
import { decodeImage, type ImageFormat } from './decode-image.ts';
import { fitRegion, resizeToInput, type FitMode, type SourceRegion } from './resize-image.ts';
import { softmax } from './top-classes.ts';

export interface ImagePrediction {
  readonly file: string;
  readonly format: ImageFormat;
  /** The image's size as seen (after EXIF rotation). */
  readonly width: number;
  readonly height: number;
  /** The part that was resized to the network's input. */
  readonly region: SourceRegion;
  /** What the network saw: NHWC floats in [0, 1]. */
  readonly input: Float32Array;
  readonly logits: Float32Array;
  readonly probabilities: number[];
}

/** Classifies the image in `file`; an unreadable, missing or undecodable file is an ImageDecodeError naming it. */
export async function predictImageFile(classifier: Classifier, file: string, fit: FitMode): Promise<ImagePrediction> {
  const image = decodeImage(await readImageFile(file), file);
  const [height, width] = classifier.inputShape;
  if (height !== width) throw new RangeError(`predict resizes to squares; model '${classifier.model.name}' takes ${height}×${width}.`);
  const input = resizeToInput(image, width, fit);
  const logits = classifier.logits(input);
  return {
    file, format: image.format, width: image.width, height: image.height, region: fitRegion(image.width, image.height, fit),
    input, logits, probabilities: softmax(logits),
  };
}

async function readImageFile(file: string): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'does not exist'
      : code === 'EISDIR' ? 'is a folder, not an image file'
      : code === 'EACCES' || code === 'EPERM' ? 'cannot be read (permission denied)'
      : `cannot be read (${code ?? (error as Error).message})`;
    throw new ImageDecodeError(`${file} ${why}.`, { cause: error });
  }
}
