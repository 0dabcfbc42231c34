/**
 * The run announcement: what a coordinator publishes so that workers know a run is active and whether they can
 * serve it (model, backend and its numerics, data fingerprint and counts, whether results must be signed). It lives at
 * `<run>:announce` with a short TTL the coordinator keeps renewing; the run id is also in `<namespace>:runs`.
 * A run listed there whose announcement has expired was left behind by a coordinator that died: anyone may
 * delete its keys (see run-cleanup.ts).
 */
import type { Redis } from 'ioredis';
import type { BackendName } from '../../compute/backend.ts';
import { AUGMENTATIONS, type AugmentationName, type TrainingRecipe } from '../../compute/training-recipe.ts';
import { RunKeys, runsKey } from './keys.ts';

/**
 * Bumped whenever jobs, results, weights or the announcement change shape or place (2: weights in the feed
 * only, take-backs on their own stream; 3: the recipe names its augmentation and steps per epoch, evaluation
 * jobs may ask for test-time augmentation, and the announcement carries the engine's numerics): workers refuse
 * runs of another protocol.
 */
export const PROTOCOL_VERSION = 3;

export interface RunAnnouncement {
  readonly protocol: number;
  readonly runId: string;
  /** 'running' while jobs may come; 'closing' tells workers to leave the run now. */
  readonly state: 'running' | 'closing';
  readonly model: string;
  readonly parameterCount: number;
  readonly classes: number;
  readonly backend: BackendName;
  /**
   * The coordinator's engine's numerics identity (src/compute/numerics-identity.ts): a worker whose own engine
   * reports another one would compute other bytes, and refuses the run.
   */
  readonly numerics: string;
  /** SHA-256 of the coordinator's CIFAR-10 files (all of them, whatever the limits). */
  readonly dataFingerprint: string;
  readonly trainCount: number;
  readonly testCount: number;
  /** Augmentation seed and switches, label smoothing: part of what a shard's gradient is. */
  readonly recipe: TrainingRecipe;
  /** Whether results must carry a TRAINER_SECRET signature; then secretCheck tells a worker its secret is right. */
  readonly signed: boolean;
  readonly secretCheck?: string;
  /** Who runs it: `host` and, when the coordinator knows it, what it writes to (its --out folder). */
  readonly owner: string;
  readonly host: string;
  readonly pid: number;
  readonly startedAt: string;
}

export function encodeAnnouncement(a: RunAnnouncement): string {
  return JSON.stringify(a);
}

/** Parses an announcement; undefined for anything that is not one (a worker then ignores the run). */
export function parseAnnouncement(text: string | null): RunAnnouncement | undefined {
  if (text === null) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const a = value as Record<string, unknown>;
  const strings = ['runId', 'model', 'backend', 'numerics', 'dataFingerprint', 'owner', 'host', 'startedAt'];
  const numbers = ['protocol', 'parameterCount', 'classes', 'trainCount', 'testCount', 'pid'];
  if (!strings.every((k) => typeof a[k] === 'string') || !numbers.every((k) => Number.isSafeInteger(a[k]))) return undefined;
  if (a.state !== 'running' && a.state !== 'closing') return undefined;
  if (typeof a.signed !== 'boolean') return undefined;
  if (a.secretCheck !== undefined && typeof a.secretCheck !== 'string') return undefined;
  const r = a.recipe as Record<string, unknown> | null | undefined;
  if (
    !r || typeof r !== 'object' || !Number.isSafeInteger(r.seed) || !AUGMENTATIONS.includes(r.augmentation as AugmentationName) ||
    typeof r.labelSmoothing !== 'number' || !Number.isSafeInteger(r.stepsPerEpoch) || (r.stepsPerEpoch as number) < 1
  ) return undefined;
  return value as RunAnnouncement;
}

/** Writes (or renews) the announcement with a TTL and lists the run in its namespace. */
export async function announceRun(redis: Redis, keys: RunKeys, a: RunAnnouncement, ttlMs: number): Promise<void> {
  await redis.multi().set(keys.announce, encodeAnnouncement(a), 'PX', ttlMs).sadd(runsKey(keys.namespace), keys.runId).exec();
}

/** Renews the TTL; false when the announcement is gone (Redis lost it, or someone swept the run). */
export async function renewAnnouncement(redis: Redis, keys: RunKeys, ttlMs: number): Promise<boolean> {
  return (await redis.pexpire(keys.announce, ttlMs)) === 1;
}

export async function readAnnouncement(redis: Redis, keys: RunKeys): Promise<RunAnnouncement | undefined> {
  return parseAnnouncement(await redis.get(keys.announce));
}

/** Every run id listed in the namespace, with its announcement (undefined: expired or unreadable). */
export async function listRuns(redis: Redis, namespace: string): Promise<{ keys: RunKeys; announcement: RunAnnouncement | undefined }[]> {
  const ids = (await redis.smembers(runsKey(namespace))).filter((id) => /^[a-z0-9-]{1,64}$/.test(id)).sort();
  if (ids.length === 0) return [];
  const all = ids.map((id) => new RunKeys(namespace, id));
  const texts = await redis.mget(...all.map((k) => k.announce));
  return all.map((keys, i) => ({ keys, announcement: parseAnnouncement(texts[i]) }));
}
