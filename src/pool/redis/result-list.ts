/**
 * The run's result list (`<run prefix>:results`): a worker pushes each result there whole (RPUSH), and the
 * coordinator pops them (BLPOP) as they come. A result costs one write and one read, and the coordinator has it
 * the moment it is written, without waiting for BullMQ to complete the job and announce that on its event stream
 * (then a GET of the result): at batch 128 that wait was about a third of a remote step.
 *
 * An entry is one header line, JSON `{"job": <job id>, "worker": <name>}`, then the result envelope (msgpack,
 * payload-codec.ts). So even a result whose envelope is unreadable names the job to compute again and the
 * worker to blame; the envelope, checked afterwards, must name the same job.
 */
import type { Redis } from 'ioredis';
import { CodecError } from './payload-codec.ts';
import type { RunKeys } from './keys.ts';
import { FramePool, sendFrame } from './frame-command.ts';

/** The list's lifetime, renewed by every push: results of a run whose coordinator died disappear by themselves. */
export const RESULT_TTL_S = 600;
/** Longest header accepted (job ids and worker names are short). */
const MAX_HEADER_BYTES = 1024;
const NEWLINE = 0x0a;

export interface ResultEntry {
  readonly jobId: string;
  /** The name the worker gives itself (unverified until the envelope's signature is). */
  readonly worker: string;
  readonly envelope: Buffer;
}

/**
 * An entry in parts, which pushResult writes one after the other: the header line, then the envelope (in the
 * parts of encodeResultParts, or in one).
 */
export function encodeResultEntry(jobId: string, worker: string, envelope: Uint8Array | readonly Uint8Array[]): readonly Uint8Array[] {
  return [Buffer.from(`${JSON.stringify({ job: jobId, worker })}\n`), ...(envelope instanceof Uint8Array ? [envelope] : envelope)];
}

export function decodeResultEntry(bytes: Buffer): ResultEntry {
  const end = bytes.subarray(0, MAX_HEADER_BYTES).indexOf(NEWLINE);
  if (end < 0) throw new CodecError(`the entry has no header line within its first ${MAX_HEADER_BYTES} bytes`);
  let header: unknown;
  try {
    header = JSON.parse(bytes.subarray(0, end).toString('utf8'));
  } catch (error) {
    throw new CodecError(`the entry's header is not JSON (${(error as Error).message})`);
  }
  const { job, worker } = (header ?? {}) as { job?: unknown; worker?: unknown };
  if (typeof job !== 'string' || typeof worker !== 'string') throw new CodecError('the entry\'s header names no job and worker');
  return { jobId: job, worker: worker.slice(0, 200), envelope: bytes.subarray(end + 1) };
}

/**
 * Appends an entry (encodeResultEntry) to the run's list and renews the list's lifetime: two commands written
 * back to back, not a MULTI, in which ioredis copies the 325 KB entry twice. The lifetime is only a safety net
 * for the keys of a run nobody cleans up (run-cleanup.ts sweeps those too), renewed by every push.
 */
export async function pushResult(redis: Redis, keys: RunKeys, entry: readonly Uint8Array[]): Promise<void> {
  await Promise.all([sendFrame(redis, PUSH_FRAMES, 'rpush', [keys.results, entry]), redis.expire(keys.results, RESULT_TTL_S)]);
}

/** The RPUSH frames of this process (frame-command.ts): one per push in flight. */
const PUSH_FRAMES = new FramePool();

/**
 * The next entry of the run's list, waiting up to `timeoutMs` for one; null when none came. `redis` is blocked
 * meanwhile: give it a connection of its own.
 */
export async function popResult(redis: Redis, keys: RunKeys, timeoutMs: number): Promise<Buffer | null> {
  const reply = await redis.blpopBuffer(keys.results, timeoutMs / 1000);
  return reply ? reply[1] : null;
}
