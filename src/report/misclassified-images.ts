// The misclassified test images eval.json lists, cut out of the data set and encoded as PNG data URLs.
import { DatasetMismatchError } from '../errors/index.ts';
import { IMAGE_BYTES, IMAGE_HEIGHT, IMAGE_WIDTH, type ImageSet } from '../data/cifar10-dataset.ts';
import type { EvaluationReport } from '../eval/test-evaluation.ts';
import { encodePngRgb, pngDataUrl } from './png-encode.ts';

export interface MisclassifiedImage {
  readonly index: number;
  readonly label: number;
  readonly predicted: number;
  /** `data:image/png;base64,…` of the 32×32 test image. */
  readonly src: string;
}

/**
 * One PNG per entry of `evaluation.misclassified`, read from `test` (NHWC bytes: each image is already 32 rows
 * of 32 RGB pixels). Throws DatasetMismatchError when `test` is not the set the model was evaluated on: too few
 * images, or a label that differs from the one eval.json recorded.
 */
export function misclassifiedImages(evaluation: EvaluationReport, test: ImageSet, dataDir: string): MisclassifiedImage[] {
  const advice = `Point --data at the data set the model was evaluated on, or pass --no-images to leave the pictures out.`;
  if (test.count < evaluation.images) {
    throw new DatasetMismatchError(
      `eval.json covers ${evaluation.images} test images but the test set in ${dataDir} holds only ${test.count}. ${advice}`,
    );
  }
  return evaluation.misclassified.map(({ index, label, predicted }) => {
    if (test.labels[index] !== label) {
      const names = evaluation.classNames;
      throw new DatasetMismatchError(
        `eval.json says test image ${index} is a ${names[label] ?? label}, but in ${dataDir} it is labelled ` +
          `${names[test.labels[index]] ?? test.labels[index]}: that is another data set. ${advice}`,
      );
    }
    const rgb = test.images.subarray(index * IMAGE_BYTES, (index + 1) * IMAGE_BYTES);
    return { index, label, predicted, src: pngDataUrl(encodePngRgb(IMAGE_WIDTH, IMAGE_HEIGHT, rgb)) };
  });
}
