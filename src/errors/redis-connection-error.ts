import { TrainerError } from './trainer-error.ts';

/** Redis cannot be reached or refused the connection (address, password, TLS). */
export class RedisConnectionError extends TrainerError {}
