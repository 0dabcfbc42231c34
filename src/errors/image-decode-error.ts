import { TrainerError } from './trainer-error.ts';

/** A file given to `npm run predict` cannot be read, or is not a PNG or JPEG image that can be decoded. */
export class ImageDecodeError extends TrainerError {}
