/**
 * Shared-secret signatures (HMAC-SHA256) for what crosses Redis, so that whoever can write to Redis but does not
 * know TRAINER_SECRET cannot get a gradient into the weights:
 * - a worker signs each result over (run id, task kind, step, shard, weights version, digest of the job's
 *   task, payload bytes); the coordinator recomputes the signature from its own copy of the task, so a result
 *   for another run, step, shard, version or set of images fails to verify;
 * - the coordinator signs each weights version, so workers never compute with weights someone else wrote;
 * - the run announcement carries a check value, so a worker with another secret refuses the run up front.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** The secret from the environment (TRAINER_SECRET), or undefined when unset or empty. */
export function secretFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.TRAINER_SECRET ? env.TRAINER_SECRET : undefined;
}

/** What a result signature covers besides the payload. */
export interface ResultSubject {
  readonly runId: string;
  readonly kind: string;
  /** Global step (gradients) or -1 (evaluation). */
  readonly step: number;
  /** Shard within the step (gradients) or task index (evaluation). */
  readonly shard: number;
  readonly weightsVersion: number;
  /** Hex SHA-256 of the job's task (see payload-codec.ts taskDigest). */
  readonly taskDigest: string;
}

function hmac(secret: string, parts: readonly (string | Uint8Array)[]): Buffer {
  const mac = createHmac('sha256', secret);
  for (const part of parts) {
    // Length-prefixed, so no two different part lists hash the same bytes.
    const bytes = typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    mac.update(length);
    mac.update(bytes);
  }
  return mac.digest();
}

function subjectParts(s: ResultSubject): string[] {
  return ['cifar-dp result v1', s.runId, s.kind, String(s.step), String(s.shard), String(s.weightsVersion), s.taskDigest];
}

export function signResult(secret: string, subject: ResultSubject, payload: Uint8Array): Buffer {
  return hmac(secret, [...subjectParts(subject), payload]);
}

/** True when `signature` is the result signature of (subject, payload) under `secret`. */
export function verifyResult(secret: string, subject: ResultSubject, payload: Uint8Array, signature: Uint8Array): boolean {
  return equalBytes(signResult(secret, subject, payload), signature);
}

export function signWeights(secret: string, runId: string, version: number, bytes: Uint8Array): Buffer {
  return hmac(secret, ['cifar-dp weights v1', runId, String(version), bytes]);
}

export function verifyWeights(secret: string, runId: string, version: number, bytes: Uint8Array, signature: Uint8Array): boolean {
  return equalBytes(signWeights(secret, runId, version, bytes), signature);
}

/** A value published with the run that lets a worker tell whether its secret is the coordinator's. */
export function secretCheck(secret: string, runId: string): string {
  return hmac(secret, ['cifar-dp secret check v1', runId]).toString('hex');
}

export function sha256Hex(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
