import { TrainerError } from './trainer-error.ts';

/** `npm run native:install` cannot put tfjs-node in place: pip or the TensorFlow wheel is missing, or the build failed. */
export class NativeInstallError extends TrainerError {}
