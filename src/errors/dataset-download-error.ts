import { TrainerError } from './trainer-error.ts';

/** The data set is absent and could not be downloaded (offline, bad checksum, failed unpack). */
export class DatasetDownloadError extends TrainerError {}
