/**
 * What crosses Redis, byte for byte. Bulk numbers are binary through msgpackr (typed arrays travel as their raw
 * bytes: a gradient of 82,000 floats is 328 KB, never a JSON array of numbers):
 * - job data (BullMQ stores it as JSON, so it stays small: ids, versions, and the shard's image indices as
 *   base64 of little-endian int32s);
 * - a result: an envelope (who, which task, signature) around a payload (the gradient's raw float32 bytes,
 *   or msgpack of an evaluation's predictions);
 * - a weights version: msgpack of the Float32Array and its signature.
 * Decoders never trust their input: anything unexpected is a CodecError that says what was wrong.
 */
import { Packr } from 'msgpackr';
import type { EvalResult } from '../worker-pool.ts';
import { sha256Hex } from './result-signing.ts';
import type { TaskKind } from './keys.ts';

const packr = new Packr({ useRecords: false, moreTypes: true, mapsAsObjects: true });
/** msgpack's type bytes for a bin and an ext with a 32-bit length. */
const BIN_32 = 0xc6;
const EXT_32 = 0xc9;

/** A Redis value or job that does not decode to what it should. */
export class CodecError extends Error {}

export const JOB_FORMAT = 1;

export interface GradientJobData {
  readonly v: typeof JOB_FORMAT;
  readonly kind: 'gradient';
  readonly round: number;
  readonly index: number;
  readonly step: number;
  readonly shard: number;
  readonly weightsVersion: number;
  /** The shard's image indices: base64 of little-endian int32s. */
  readonly indices: string;
}

export interface EvaluateJobData {
  readonly v: typeof JOB_FORMAT;
  readonly kind: 'evaluate';
  readonly round: number;
  readonly index: number;
  readonly weightsVersion: number;
  readonly start: number;
  readonly end: number;
  /** With test-time augmentation (absent: without). */
  readonly tta?: true;
}

export type JobData = GradientJobData | EvaluateJobData;

export function encodeIndices(indices: Int32Array): string {
  const bytes = Buffer.alloc(indices.length * 4);
  for (let i = 0; i < indices.length; i++) bytes.writeInt32LE(indices[i], i * 4);
  return bytes.toString('base64');
}

export function decodeIndices(text: string): Int32Array {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length % 4 !== 0 || bytes.toString('base64') !== text) throw new CodecError('indices are not base64 of int32s');
  const out = new Int32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readInt32LE(i * 4);
  return out;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Validates job data read from BullMQ (written by a coordinator, or by anyone with access to Redis). */
export function parseJobData(data: unknown): JobData {
  if (data === null || typeof data !== 'object') throw new CodecError('job data is not an object');
  const d = data as Record<string, unknown>;
  if (d.v !== JOB_FORMAT) throw new CodecError(`job format ${String(d.v)} is not ${JOB_FORMAT} (coordinator and worker run different versions)`);
  if (!isCount(d.round) || !isCount(d.index) || !isCount(d.weightsVersion)) throw new CodecError('job data lacks round, index or weightsVersion');
  if (d.kind === 'gradient') {
    if (!isCount(d.step) || !isCount(d.shard) || typeof d.indices !== 'string') throw new CodecError('gradient job lacks step, shard or indices');
    decodeIndices(d.indices);
    return { v: JOB_FORMAT, kind: 'gradient', round: d.round, index: d.index, step: d.step, shard: d.shard, weightsVersion: d.weightsVersion, indices: d.indices };
  }
  if (d.kind === 'evaluate') {
    if (!isCount(d.start) || !isCount(d.end) || d.end <= d.start) throw new CodecError('evaluation job has no valid start/end');
    if (d.tta !== undefined && d.tta !== true) throw new CodecError('evaluation job has an invalid tta field');
    return {
      v: JOB_FORMAT, kind: 'evaluate', round: d.round, index: d.index, weightsVersion: d.weightsVersion, start: d.start, end: d.end,
      ...(d.tta ? { tta: true as const } : {}),
    };
  }
  throw new CodecError(`unknown job kind ${JSON.stringify(d.kind)}`);
}

/** SHA-256 of a task's defining fields in a fixed order: what a result signature binds the result to. */
export function taskDigest(data: JobData): string {
  const fields =
    data.kind === 'gradient'
      ? [data.v, data.kind, data.round, data.index, data.step, data.shard, data.weightsVersion, data.indices]
      : [data.v, data.kind, data.round, data.index, data.weightsVersion, data.start, data.end];
  return sha256Hex(fields.join('|'));
}

/** The step and shard a result signature names: (step, shard) for gradients, (-1, index) for evaluation. */
export function subjectPosition(data: JobData): { step: number; shard: number } {
  return data.kind === 'gradient' ? { step: data.step, shard: data.shard } : { step: -1, shard: data.index };
}

// ---- results ----

export const RESULT_FORMAT = 'cifar-dp-result/1';

export interface ResultEnvelope {
  readonly format: typeof RESULT_FORMAT;
  readonly runId: string;
  readonly jobId: string;
  /** The worker's own name for itself (a claim: only the signature is proof of anything). */
  readonly worker: string;
  readonly kind: TaskKind;
  readonly step: number;
  readonly shard: number;
  readonly weightsVersion: number;
  /** The gradient's raw float32 bytes, or msgpack of an evaluation: { start, lossSum, predictions: Int32Array }. */
  readonly payload: Uint8Array;
  /** HMAC-SHA256 (result-signing.ts), absent when the worker has no TRAINER_SECRET. */
  readonly signature?: Uint8Array;
}

/**
 * A gradient result's payload: its float32s as raw little-endian bytes (every machine this runs on is
 * little-endian, as typed arrays are), a view of `values` without a copy.
 */
export function encodeGradientPayload(values: Float32Array): Uint8Array {
  return bytesOf(values);
}

export function encodeEvalPayload(result: EvalResult): Buffer {
  return packr.pack({ start: result.start, lossSum: result.lossSum, predictions: result.predictions });
}

/** A result envelope in one buffer (encodeResultParts joined). */
export function encodeResult(envelope: ResultEnvelope): Buffer {
  return Buffer.concat(encodeResultParts(envelope));
}

/**
 * A result envelope as msgpack, in two parts to be written one after the other: the map up to and including
 * the header of its last field, `payload` (bin 32), then the payload's own bytes, not copied. The same bytes
 * as msgpackr's for that map, without the copy of the 325 KB into msgpackr's buffer (a fresh one every few
 * results: see frame-command.ts on what fresh buffers of that size cost).
 */
export function encodeResultParts(envelope: ResultEnvelope): readonly Uint8Array[] {
  const { format, runId, jobId, worker, kind, step, shard, weightsVersion, payload, signature } = envelope;
  const head = { format, runId, jobId, worker, kind, step, shard, weightsVersion, ...(signature ? { signature: Buffer.from(signature) } : {}) };
  return [withTrailingField(head, 'payload', BIN_32, payload.byteLength), payload];
}

/**
 * msgpack of `head` with one more field, `key`, after its others, up to where that field's bytes start: its
 * type byte `type`, a 32-bit big-endian length, then `after` (an extension's type bytes). The bytes follow.
 */
function withTrailingField(head: Record<string, unknown>, key: string, type: number, length: number, after: readonly number[] = []): Buffer {
  const map = packr.pack(head);
  const keyBytes = packr.pack(key);
  const out = Buffer.allocUnsafe(map.length + keyBytes.length + 5 + after.length);
  out.set(map, 0);
  // msgpackr writes an object as a map16 (0xde, then the count); a fixmap (0x80 | count) is handled too.
  if (out[0] === 0xde) out.writeUInt16BE(out.readUInt16BE(1) + 1, 1);
  else if (out[0] >= 0x80 && out[0] < 0x8f) out[0] += 1;
  else throw new CodecError(`cannot extend a msgpack map that starts with 0x${out[0].toString(16)}`);
  let at = map.length;
  out.set(keyBytes, at);
  at += keyBytes.length;
  out[at] = type;
  out.writeUInt32BE(length, at + 1);
  out.set(after, at + 5);
  return out;
}

function unpack(bytes: Uint8Array, what: string): unknown {
  try {
    return packr.unpack(bytes);
  } catch (error) {
    throw new CodecError(`${what} is not valid msgpack (${(error as Error).message})`);
  }
}

export function decodeResult(bytes: Uint8Array): ResultEnvelope {
  const value = unpack(bytes, 'the result');
  if (value === null || typeof value !== 'object') throw new CodecError('the result is not a msgpack map');
  const r = value as Record<string, unknown>;
  if (r.format !== RESULT_FORMAT) throw new CodecError(`the result's format is ${JSON.stringify(r.format)}, not ${RESULT_FORMAT}`);
  for (const field of ['runId', 'jobId', 'worker'] as const) {
    if (typeof r[field] !== 'string') throw new CodecError(`the result has no ${field}`);
  }
  if (r.kind !== 'gradient' && r.kind !== 'evaluate') throw new CodecError('the result has no valid kind');
  if (!Number.isSafeInteger(r.step) || !Number.isSafeInteger(r.shard) || !Number.isSafeInteger(r.weightsVersion)) {
    throw new CodecError('the result has no valid step, shard or weightsVersion');
  }
  if (!(r.payload instanceof Uint8Array)) throw new CodecError('the result has no binary payload');
  if (r.signature !== undefined && !(r.signature instanceof Uint8Array)) throw new CodecError('the result has a signature that is not bytes');
  return {
    format: RESULT_FORMAT, runId: r.runId as string, jobId: r.jobId as string, worker: (r.worker as string).slice(0, 200),
    kind: r.kind, step: r.step as number, shard: r.shard as number, weightsVersion: r.weightsVersion as number,
    payload: r.payload, ...(r.signature ? { signature: r.signature as Uint8Array } : {}),
  };
}

/**
 * The gradient in a payload, copied into `into` when that has the payload's length (a buffer reused from step
 * to step), else into a fresh array. The number of values and their finiteness are checked by the caller.
 */
export function decodeGradientPayload(payload: Uint8Array, into?: Float32Array): Float32Array {
  if (payload.byteLength % 4 !== 0) throw new CodecError(`the gradient payload is ${payload.byteLength} bytes, not a whole number of float32s`);
  const count = payload.byteLength / 4;
  const values = into?.length === count ? into : new Float32Array(count);
  bytesOf(values).set(payload);
  return values;
}

/** An evaluation result, checked against its task and the number of classes. */
export function decodeEvalPayload(payload: Uint8Array, task: { start: number; end: number }, classes: number): EvalResult {
  const value = unpack(payload, 'the evaluation payload');
  if (value === null || typeof value !== 'object') throw new CodecError('the evaluation payload is not a map');
  const { start, lossSum, predictions } = value as Record<string, unknown>;
  if (start !== task.start) throw new CodecError(`the evaluation result starts at ${String(start)}, not ${task.start}`);
  if (typeof lossSum !== 'number' || !Number.isFinite(lossSum) || lossSum < 0) throw new CodecError(`the evaluation loss sum is ${String(lossSum)}`);
  if (!(predictions instanceof Int32Array)) throw new CodecError('the evaluation payload holds no Int32Array of predictions');
  if (predictions.length !== task.end - task.start) {
    throw new CodecError(`the evaluation result holds ${predictions.length} predictions, expected ${task.end - task.start}`);
  }
  for (const p of predictions) if (p < 0 || p >= classes) throw new CodecError(`the evaluation result predicts class ${p}`);
  return { start, lossSum, predictions };
}

// ---- weights ----

export const WEIGHTS_FORMAT = 'cifar-dp-weights/1';

export interface WeightsRecord {
  readonly runId: string;
  readonly version: number;
  readonly values: Float32Array;
  readonly signature?: Uint8Array;
}

/** A weights record in one buffer (encodeWeightsParts joined). */
export function encodeWeights(record: WeightsRecord): Buffer {
  return Buffer.concat(encodeWeightsParts(record));
}

/** msgpackr's extension for typed arrays (moreTypes): ext type 0x74, then the array's type, 7 for Float32Array. */
const TYPED_ARRAY_EXT = 0x74;
const FLOAT32_ARRAY_TYPE = 7;

/**
 * A weights record as msgpack in two parts, like encodeResultParts: the map up to its last field, `values` (a
 * Float32Array as msgpackr's typed-array extension, ext 32), then the floats' own bytes, not copied. decodeWeights
 * reads it as msgpackr would its own.
 */
export function encodeWeightsParts(record: WeightsRecord): readonly Uint8Array[] {
  const { runId, version, values, signature } = record;
  const head = { format: WEIGHTS_FORMAT, runId, version, ...(signature ? { signature: Buffer.from(signature) } : {}) };
  // ext 32's length counts the array-type byte, which follows the ext type.
  return [withTrailingField(head, 'values', EXT_32, values.byteLength + 1, [TYPED_ARRAY_EXT, FLOAT32_ARRAY_TYPE]), bytesOf(values)];
}

export function decodeWeights(bytes: Uint8Array): WeightsRecord {
  const value = unpack(bytes, 'the weights');
  const r = (value ?? {}) as Record<string, unknown>;
  if (r.format !== WEIGHTS_FORMAT) throw new CodecError(`the weights' format is ${JSON.stringify(r.format)}, not ${WEIGHTS_FORMAT}`);
  if (typeof r.runId !== 'string' || !Number.isSafeInteger(r.version)) throw new CodecError('the weights have no run id or version');
  if (!(r.values instanceof Float32Array)) throw new CodecError('the weights hold no Float32Array');
  if (r.signature !== undefined && !(r.signature instanceof Uint8Array)) throw new CodecError('the weights have a signature that is not bytes');
  return { runId: r.runId, version: r.version as number, values: r.values, ...(r.signature ? { signature: r.signature as Uint8Array } : {}) };
}

/** The bytes of a typed array, without a copy. */
export function bytesOf(array: ArrayBufferView): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}
