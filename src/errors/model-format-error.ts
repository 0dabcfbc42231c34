import { TrainerError } from './trainer-error.ts';

/** Saved model files (model.json / weights.bin) are missing, corrupt or of another model. */
export class ModelFormatError extends TrainerError {}
