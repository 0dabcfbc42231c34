/**
 * WorkerPool over Redis: shards and evaluation ranges become BullMQ jobs of the run's queue, served by
 * `npm run worker` processes anywhere (./remote-worker.ts). What goes where:
 *
 *   coordinator                               Redis (all under <namespace>:run:<runId>:)        worker
 *   publishWeights(v) ─ XADD weights-feed ──▶ weights-feed (stream of the last 4 versions, ─ XREAD BLOCK ─▶
 *                                              binary, once per step)
 *   computeGradients ─ addBulk jobs ────────▶ tasks:* (BullMQ queue; job = ids + indices) ─ takes job ─▶
 *     (this step's, then the next step's: a worker holds one of those until its weights are on the feed)
 *     ─ XADD take-backs ─────────────────────▶ take-backs (stream: jobs handed out ahead, withdrawn) ─ XREAD ─▶
 *                    ◀─ BLPOP results ─────── results (list; msgpack Float32Array bytes, ◀──── RPUSH ─── then
 *                                              HMAC-signed with TRAINER_SECRET)                  completes the job
 *                    ◀─ XREAD tasks:events ── 'failed' / 'stalled' jobs
 *
 * Every result is checked before it is used (run, task, weights version, signature, length, NaN/Inf); one that
 * fails is logged with the worker's id, counted, and its shard computed again as a new job. Results are
 * returned in task order, so the sum of a step never depends on who finished first. A shard that is not back
 * makes the pool say on whom it waits; after shardTimeoutSeconds it gives up with a WorkerTimeoutError.
 * Losing Redis is ridden out for a while (and the run re-announced if Redis lost its data); after that a
 * RedisConnectionError stops the run, whose last completed step is in the checkpoint for --resume.
 */
import os from 'node:os';
import { createRequire } from 'node:module';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { BackendChoice, BackendName } from '../../compute/backend.ts';
import { PLAIN_RECIPE, type TrainingRecipe } from '../../compute/training-recipe.ts';
import { hasFusedImplementation } from '../../compute/fused/fused-tutorial-cnn.ts';
import type { Cifar10Dataset } from '../../data/cifar10-dataset.ts';
import { RedisConnectionError, ShardResultError, WorkerTimeoutError } from '../../errors/index.ts';
import type { EvalResult, EvalTask, ShardTask, WorkerPool } from '../worker-pool.ts';
import { shardResultLength, validateShardResult } from '../shard-result.ts';
import { ResultBuffers } from '../result-buffers.ts';
import { checkRedis, openClient, parseRedisUrl, redisConnectionError, type RedisTarget, withDeadline } from './connection.ts';
import { type JobName, QUEUE_NAME, RunKeys, type TaskKind, jobId, newRunId, parseJobId, resolveNamespace } from './keys.ts';
import { PROTOCOL_VERSION, type RunAnnouncement, announceRun, renewAnnouncement } from './run-announcement.ts';
import { deleteRunKeys, sweepAbandonedRuns } from './run-cleanup.ts';
import { WeightsStore, takeBackJobs } from './weights-store.ts';
import { type WorkerPresence, describePresences, readPresences } from './worker-presence.ts';
import { secretCheck, secretFromEnv, verifyResult } from './result-signing.ts';
import {
  CodecError, type JobData, type ResultEnvelope, decodeEvalPayload, decodeGradientPayload, decodeResult, encodeIndices,
  subjectPosition, taskDigest, JOB_FORMAT,
} from './payload-codec.ts';
import { decodeResultEntry, popResult } from './result-list.ts';
import { crashPoint } from '../../testing/crash-point.ts';

export interface RedisPoolOptions {
  readonly url: string;
  readonly model: string;
  readonly parameterCount: number;
  readonly dataset: Pick<Cifar10Dataset, 'fingerprint' | 'train' | 'test'> & { readonly classNames?: readonly string[] };
  /** Augmentation and label smoothing the workers apply (default: none). */
  readonly recipe?: TrainingRecipe;
  /** 'auto' becomes 'node' when @tensorflow/tfjs-node is installed here, else 'fused' (model permitting) or 'wasm'; workers follow it. */
  readonly backend: BackendChoice;
  /** Give up (WorkerTimeoutError) when a step's shards are not all back after this long. */
  readonly shardTimeoutSeconds: number;
  readonly log: (line: string) => void;
  /** Key namespace (default $TRAINER_NAMESPACE, else 'cifar-dp'); workers serve the runs of their namespace. */
  readonly namespace?: string;
  /**
   * What this run writes to, e.g. the absolute --out folder. A run announced on this host with the same owner
   * is an earlier attempt of this one (a coordinator killed, then restarted with --resume): its keys are deleted
   * at once. Without it, earlier attempts are removed when their announcement expires.
   */
  readonly owner?: string;
  /** Shared secret for signed results (default $TRAINER_SECRET; unset: results are not signed). */
  readonly secret?: string;
  /** TTL of the run announcement; the coordinator renews it every fifth of it. Default 10 s. */
  readonly announceTtlSeconds?: number;
  /** How long to wait for a lost Redis connection to come back before stopping the run (default $TRAINER_REDIS_OUTAGE_SECONDS, else 60 s). */
  readonly redisOutageSeconds?: number;
  /** How often to say on whom a step waits. Default: a quarter of shardTimeoutSeconds, between 1 and 10 s. */
  readonly waitLogSeconds?: number;
}

/** Why a result was not used; counted per reason (see rejectedResults()). */
export type RejectReason =
  | 'unsigned' | 'bad-signature' | 'malformed' | 'wrong-length' | 'non-finite' | 'late' | 'duplicate' | 'wrong-task';

class RejectedResult extends Error {
  constructor(readonly reason: RejectReason, message: string) {
    super(message);
  }
}

/** One task of a round (a step's shards, or an evaluation's test ranges). */
interface RoundTask<T> {
  readonly data: JobData;
  readonly digest: string;
  /** "step 12 shard 1" / "test images 500–999". */
  readonly label: string;
  readonly decode: (envelope: ResultEnvelope, worker: string) => T;
  attempt: number;
  /** The job id of the attempt in flight; undefined while (re)submission is due. */
  jobId: string;
  submitted: boolean;
  /**
   * Earlier attempts that went out as jobs and may still be held by a worker (a job handed out ahead waits for
   * its weights): a take-back must reach those too, or a worker keeps waiting on one whose weights never come.
   */
  readonly earlier: string[];
  /** BullMQ reported the job stalled (its worker died or hung) and put it back in the queue. */
  requeued?: boolean;
  result?: T;
}

interface StreamEvent {
  readonly id: string;
  readonly fields: Record<string, string>;
}

/** The next step's tasks, handed out ahead of their weights (computeGradients' `next`). */
interface AheadRound {
  readonly round: number;
  readonly shards: readonly ShardTask[];
  readonly tasks: RoundTask<Float32Array>[];
  /** Taken back while this step runs (see takeBackAhead); handed out with the next call. */
  heldBack: boolean;
}

/** A read from Redis in flight, kept across rounds until it answers (nothing it returns is lost). */
interface PendingRead<T> {
  readonly promise: Promise<T>;
  settled: boolean;
  value?: T;
}

function pendingRead<T>(promise: Promise<T>): PendingRead<T> {
  const read: PendingRead<T> = {
    promise: promise.then((value) => {
      read.settled = true;
      read.value = value;
      return value;
    }),
    settled: false,
  };
  return read;
}

const DEFAULT_ANNOUNCE_TTL_S = 10;
const DEFAULT_OUTAGE_S = 60;
const TICK_MS = 1000;

export class RedisPool implements WorkerPool {
  private round = 0;
  /** Rounds whose jobs are out, by number: the running one, and the next step's when it was handed out ahead. */
  private readonly rounds = new Map<number, { readonly kind: TaskKind; readonly tasks: RoundTask<unknown>[] }>();
  /** The next step's tasks, handed out ahead (computeGradients' `next`): their round and tasks. */
  private ahead: AheadRound | undefined;
  private lastEventId = '0-0';
  private eventRead: PendingRead<StreamEvent[]> | undefined;
  private resultPop: PendingRead<Buffer | null> | undefined;
  private currentVersion = -1;
  private currentWeights: Float32Array | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private heartbeatBusy = false;
  /** Set by the heartbeat when the announcement vanished (Redis lost its data, or the run was swept). */
  private runLost = false;
  private recoveries = 0;
  private disconnectedSince: number | undefined;
  private lastConnectionError = '';
  private closed = false;
  private serving = 0;
  /** Whether a worker was ever seen serving this run (then close() waits for workers to leave). */
  private everServed = false;
  private readonly rejected = new Map<RejectReason, number>();
  /** Jobs to withdraw whose take-back is not written yet (see takeBack). */
  private readonly takeBacksDue = new Set<string>();
  private readonly traffic = { weightsBytes: 0, resultBytes: 0, jobs: 0 };
  /** Where gradients are decoded to, reused once the trainer recycles them. */
  private readonly gradients: ResultBuffers;

  private constructor(
    private readonly options: RedisPoolOptions,
    private readonly target: RedisTarget,
    private readonly redis: Redis,
    private readonly events: Redis,
    private readonly results: Redis,
    private readonly queueClient: Redis,
    private readonly queue: Queue,
    readonly keys: RunKeys,
    private readonly announcement: RunAnnouncement,
    private readonly weights: WeightsStore,
    private readonly secret: string | undefined,
    readonly backend: BackendName,
  ) {
    this.gradients = new ResultBuffers(options.parameterCount);
    redis.on('close', () => {
      this.disconnectedSince ??= Date.now();
    });
    redis.on('error', (error: Error) => {
      this.lastConnectionError = error.message;
    });
    redis.on('ready', () => {
      if (this.disconnectedSince !== undefined && !this.closed) {
        this.options.log(`Redis at ${this.target.display} is back after ${((Date.now() - this.disconnectedSince) / 1000).toFixed(1)} s.`);
      }
      this.disconnectedSince = undefined;
    });
  }

  static async create(options: RedisPoolOptions): Promise<RedisPool> {
    const target = parseRedisUrl(options.url);
    await checkRedis(target);
    const namespace = resolveNamespace(options.namespace);
    const backend = resolveRemoteBackend(options.backend, options.model);
    const secret = options.secret ?? secretFromEnv();
    const keys = new RunKeys(namespace, newRunId());
    const host = os.hostname();
    const owner = options.owner !== undefined ? `${host}:${options.owner}` : `${host}:pid ${process.pid}`;
    const ttlMs = (options.announceTtlSeconds ?? DEFAULT_ANNOUNCE_TTL_S) * 1000;

    const redis = openClient(target, 'cifar-dp:coordinator');
    const events = openClient(target, 'cifar-dp:coordinator-events');
    const results = openClient(target, 'cifar-dp:coordinator-results');
    // BullMQ gets a client of ours, so that closing never waits on a connection BullMQ keeps retrying.
    const queueClient = openClient(target, 'cifar-dp:coordinator-queue');
    let queue: Queue | undefined;
    try {
      await withDeadline(redis.ping(), 10_000, () => redisConnectionError(target, new Error('no answer to PING within 10 s')));
      await sweepAbandonedRuns(redis, namespace, { except: keys.runId, owner: options.owner !== undefined ? owner : undefined, log: options.log });
      queue = new Queue(QUEUE_NAME, {
        connection: queueClient,
        prefix: keys.prefix,
        streams: { events: { maxLen: 2000 } },
        defaultJobOptions: { attempts: 1, removeOnComplete: true, removeOnFail: true },
      });
      queue.on('error', () => undefined);
      await withDeadline(queue.waitUntilReady(), 10_000, () => redisConnectionError(target, new Error('the BullMQ queue did not get ready within 10 s')));
      const announcement: RunAnnouncement = {
        protocol: PROTOCOL_VERSION, runId: keys.runId, state: 'running', model: options.model, parameterCount: options.parameterCount,
        classes: options.dataset.classNames?.length ?? 10, backend, dataFingerprint: options.dataset.fingerprint,
        trainCount: options.dataset.train.count, testCount: options.dataset.test.count, recipe: options.recipe ?? PLAIN_RECIPE,
        signed: secret !== undefined,
        ...(secret ? { secretCheck: secretCheck(secret, keys.runId) } : {}), owner, host, pid: process.pid, startedAt: new Date().toISOString(),
      };
      await announceRun(redis, keys, announcement, ttlMs);
      crashPoint('redis:after-announce');
      const pool = new RedisPool(options, target, redis, events, results, queueClient, queue, keys, announcement, new WeightsStore(redis, keys, secret), secret, backend);
      pool.heartbeat = setInterval(() => void pool.beat(), Math.max(200, ttlMs / 5));
      pool.heartbeat.unref();
      options.log(
        `Run ${keys.runId} announced on Redis ${target.display} (namespace ${namespace}, backend ${backend}` +
          `${secret ? ', results must be signed with TRAINER_SECRET' : ''}). Start workers with: npm run worker -- --redis <url>`,
      );
      return pool;
    } catch (error) {
      await queue?.close().catch(() => undefined);
      redis.disconnect();
      events.disconnect();
      results.disconnect();
      queueClient.disconnect();
      if (error instanceof Error && error.name === 'RedisConnectionError') throw error;
      throw redisConnectionError(target, error);
    }
  }

  describe(): string {
    const who = this.serving > 0 ? `${this.serving} remote worker${this.serving === 1 ? '' : 's'}` : 'remote workers';
    return `${who} via Redis ${this.target.display} (run ${this.keys.runId}, ${this.backend})`;
  }

  /** Results not used so far, by reason. */
  rejectedResults(): Readonly<Record<string, number>> {
    return Object.fromEntries(this.rejected);
  }

  /** Bytes this pool wrote as weights and read as results, and jobs it submitted. */
  trafficStats(): Readonly<{ weightsBytes: number; resultBytes: number; jobs: number }> {
    return { ...this.traffic };
  }

  async publishWeights(version: number, weights: Float32Array): Promise<void> {
    this.currentVersion = version;
    // A copy (the trainer updates its array in place), into one buffer reused every step.
    if (this.currentWeights?.length !== weights.length) this.currentWeights = new Float32Array(weights.length);
    this.currentWeights.set(weights);
    this.traffic.weightsBytes += await this.whileConnected(() => this.weights.publish(version, weights), 'publishing the weights');
  }

  recycle(results: readonly Float32Array[]): void {
    this.gradients.give(results);
  }

  /**
   * With `next`, the next step's shards go out as jobs too, right behind this step's: a worker that finishes
   * its shard takes one of them at once and waits for its weights on the feed, so BullMQ's hand-off (adding,
   * waking a worker, moving the job to active) is off the next step's critical path.
   */
  async computeGradients(tasks: readonly ShardTask[], next?: readonly ShardTask[]): Promise<Float32Array[]> {
    let round: number;
    let roundTasks: RoundTask<Float32Array>[];
    const ahead = this.ahead;
    if (ahead && sameShards(ahead.shards, tasks)) {
      this.ahead = undefined;
      ({ round, tasks: roundTasks } = ahead);
    } else {
      await this.dropAhead();
      round = ++this.round;
      roundTasks = this.gradientTasks(round, tasks);
    }
    if (next && next.length > 0) {
      const nextRound = ++this.round;
      this.ahead = { round: nextRound, shards: next, tasks: this.gradientTasks(nextRound, next), heldBack: false };
      this.rounds.set(nextRound, { kind: 'gradient', tasks: this.ahead.tasks });
    }
    return this.runRound('gradient', round, roundTasks);
  }

  private gradientTasks(round: number, tasks: readonly ShardTask[]): RoundTask<Float32Array>[] {
    const expected = shardResultLength(this.options.parameterCount);
    return tasks.map((task, index) => {
      const data: JobData = {
        v: JOB_FORMAT, kind: 'gradient', round, index, step: task.step, shard: task.shard, weightsVersion: task.weightsVersion,
        indices: encodeIndices(task.indices),
      };
      return this.roundTask(data, `step ${task.step} shard ${task.shard}`, (envelope, worker) => {
        const values = this.gradients.take();
        try {
          try {
            decodeGradientPayload(envelope.payload, values);
          } catch (error) {
            if (error instanceof CodecError) throw new RejectedResult('malformed', error.message);
            throw error;
          }
          const count = envelope.payload.byteLength / 4;
          if (count !== expected) throw new RejectedResult('wrong-length', `it holds ${count} values, expected ${expected}`);
          try {
            return validateShardResult(values, this.options.parameterCount, task.indices.length, `worker ${worker}`);
          } catch (error) {
            if (error instanceof ShardResultError) throw new RejectedResult('non-finite', error.message.replace(/;? ?discarded\.$/, ''));
            throw error;
          }
        } catch (error) {
          this.gradients.give([values]);
          throw error;
        }
      });
    });
  }

  /** Forgets the round handed out ahead, which is not coming: its jobs are taken back, its results will be 'late'. */
  private async dropAhead(): Promise<void> {
    const ahead = this.ahead;
    if (!ahead) return;
    this.ahead = undefined;
    this.rounds.delete(ahead.round);
    await this.takeBack(ahead.tasks);
  }

  /**
   * Withdraws jobs handed out ahead, every attempt of them that went out: queued ones are removed, and workers
   * holding one while it waits for its weights give it up (a take-back entry on the weights feed). A withdrawal
   * that cannot be written now (Redis away) is kept and written by a later tick: a worker left holding a job
   * whose weights never come would hold it until --shard-timeout. A job that escapes ends as 'late' or
   * 'failed', which changes nothing.
   */
  private async takeBack(tasks: RoundTask<unknown>[]): Promise<void> {
    for (const t of tasks) {
      for (const id of t.earlier) this.takeBacksDue.add(id);
      if (t.submitted) this.takeBacksDue.add(t.jobId);
    }
    await this.flushTakeBacks();
  }

  /** Writes the withdrawals still due; they stay due when Redis does not take them. */
  private async flushTakeBacks(): Promise<void> {
    if (this.takeBacksDue.size === 0 || this.disconnectedSince !== undefined) return;
    const ids = [...this.takeBacksDue];
    try {
      await withDeadline(
        (async () => {
          await Promise.all(ids.map((id) => this.queue.remove(id).catch(() => undefined)));
          await takeBackJobs(this.redis, this.keys, ids);
        })(),
        2000,
        () => new Error('timed out'),
      );
      for (const id of ids) this.takeBacksDue.delete(id);
    } catch {
      // Redis away: the next tick writes them.
    }
  }

  /**
   * A task of the running step needs a worker again (its job stalled, failed or was rejected): the next step's
   * jobs, if handed out, are taken back until this step is done. Otherwise workers holding them (waiting for
   * weights that need this step) could leave no one to take it; and a retried job queues behind them.
   */
  private async takeBackAhead(): Promise<void> {
    const ahead = this.ahead;
    if (!ahead || ahead.heldBack) return;
    ahead.heldBack = true;
    await this.takeBack(ahead.tasks);
    for (const task of ahead.tasks) if (task.result === undefined) this.retry(task);
  }

  async evaluate(tasks: readonly EvalTask[]): Promise<EvalResult[]> {
    // Never needed by the trainer (it hands out ahead only within an epoch): held jobs would wait for weights
    // that come only after this evaluation.
    await this.dropAhead();
    const round = ++this.round;
    const classes = this.announcement.classes;
    return this.runRound('evaluate', round, tasks.map((task, index) => {
      const data: JobData = { v: JOB_FORMAT, kind: 'evaluate', round, index, weightsVersion: task.weightsVersion, start: task.start, end: task.end };
      return this.roundTask(data, `test images ${task.start}–${task.end - 1}`, (envelope) => {
        try {
          return decodeEvalPayload(envelope.payload, task, classes);
        } catch (error) {
          if (error instanceof CodecError) throw new RejectedResult(/predictions, expected/.test(error.message) ? 'wrong-length' : 'malformed', error.message);
          throw error;
        }
      });
    }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    const rejected = [...this.rejected].map(([reason, n]) => `${n} ${reason}`);
    if (rejected.length > 0) this.options.log(`Results not used during this run: ${rejected.join(', ')}.`);
    try {
      if (this.disconnectedSince !== undefined) throw new Error('not connected');
      await withDeadline(this.removeRun(), 15_000, () => new Error('Redis did not answer within 15 s'));
    } catch (error) {
      this.options.log(
        `Could not remove run ${this.keys.runId}'s keys from Redis ${this.target.display} (${(error as Error).message}); ` +
          'the next coordinator or worker of this namespace removes them once the run announcement has expired.',
      );
    } finally {
      const quick = <T>(p: Promise<T>) => withDeadline(p, 2000, () => new Error('timed out')).then(() => true, () => false);
      if (this.disconnectedSince === undefined) await quick(this.queue.close());
      this.queueClient.disconnect();
      this.events.disconnect();
      this.results.disconnect();
      if (this.disconnectedSince !== undefined || !(await quick(this.redis.quit()))) this.redis.disconnect();
    }
  }

  // ---- rounds ----

  private roundTask<T>(data: JobData, label: string, decode: (envelope: ResultEnvelope, worker: string) => T): RoundTask<T> {
    const task: RoundTask<T> = { data, digest: taskDigest(data), label, decode, attempt: 1, jobId: '', submitted: false, earlier: [] };
    task.jobId = jobId(this.jobName(task));
    return task;
  }

  private jobName(task: RoundTask<unknown>): JobName {
    return { kind: task.data.kind, round: task.data.round, index: task.data.index, attempt: task.attempt };
  }

  /** Sends every task as a job and waits until each has an accepted result; results in task order. */
  private async runRound<T>(kind: TaskKind, round: number, tasks: RoundTask<T>[]): Promise<T[]> {
    const started = Date.now();
    const timeoutMs = this.options.shardTimeoutSeconds * 1000;
    const waitLogMs = (this.options.waitLogSeconds ?? Math.min(10, Math.max(1, this.options.shardTimeoutSeconds / 4))) * 1000;
    let nextWaitLog = started + waitLogMs;
    let recoveriesSeen = this.recoveries;
    if (!this.rounds.has(round)) this.rounds.set(round, { kind, tasks });
    // This round's tasks, then the next step's handed out ahead (queued behind them).
    const outstanding = (): RoundTask<unknown>[] =>
      [...tasks, ...(this.ahead && !this.ahead.heldBack ? this.ahead.tasks : [])].filter((t) => t.result === undefined);
    try {
      await this.submit(outstanding().filter((t) => !t.submitted));
      crashPoint(kind === 'evaluate' ? 'redis:evaluation-handed-out' : 'redis:step-handed-out');
      const open = () => tasks.some((t) => t.result === undefined);
      while (open()) {
        this.apply(await this.nextArrivals(TICK_MS));
        if (!open()) break;
        const now = Date.now();
        this.checkConnection(now);
        if (this.recoveries !== recoveriesSeen) {
          recoveriesSeen = this.recoveries;
          const lost = outstanding();
          for (const task of lost) this.retry(task);
          this.options.log(`Resubmitted ${lost.map((t) => t.label).join(', ')} after the run's keys were restored.`);
          // Withdrawals written before the restart went with it, and workers may hold jobs Redis no longer knows
          // (waiting for weights): every earlier attempt of an open task is withdrawn again.
          for (const round of this.rounds.values()) for (const task of round.tasks) for (const id of task.earlier) this.takeBacksDue.add(id);
        }
        await this.flushTakeBacks();
        if (tasks.some((t) => t.result === undefined && (!t.submitted || t.requeued))) await this.takeBackAhead();
        const unsent = outstanding().filter((t) => !t.submitted);
        if (unsent.length > 0) await this.submit(unsent);
        if (now >= nextWaitLog || now - started >= timeoutMs) {
          const open = tasks.filter((t) => t.result === undefined);
          await this.resubmitVanished(open);
          const status = await this.describeWaiting(open, now);
          const what = kind === 'gradient' ? `step ${(open[0]?.data as { step?: number }).step ?? '?'}` : 'the evaluation';
          if (now - started >= timeoutMs) {
            throw new WorkerTimeoutError(
              `Gave up on ${what} after ${Math.floor((now - started) / 1000)} s (--shard-timeout ${this.options.shardTimeoutSeconds}): ` +
                `still waiting for ${status}. Start workers with \`npm run worker -- --redis ${this.target.display}\` ` +
                '(same data set and backend as this coordinator), or raise --shard-timeout. The checkpoint holds the last completed step; continue with --resume.',
            );
          }
          this.options.log(`Waiting ${Math.floor((now - started) / 1000)} s for ${status}.`);
          nextWaitLog = now + waitLogMs;
        }
      }
      return tasks.map((t) => t.result as T);
    } finally {
      this.rounds.delete(round);
    }
  }

  /** Adds the tasks' current attempts as jobs; a failure leaves them unsubmitted for the next tick. */
  private async submit(tasks: RoundTask<unknown>[]): Promise<void> {
    if (tasks.length === 0 || this.disconnectedSince !== undefined) return;
    try {
      await withDeadline(
        this.queue.addBulk(tasks.map((t) => ({ name: t.data.kind, data: t.data, opts: { jobId: t.jobId } }))),
        2000,
        () => new Error('timed out'),
      );
      for (const t of tasks) t.submitted = true;
      this.traffic.jobs += tasks.length;
    } catch {
      // Redis away: checkConnection() decides how long that may last; the next tick submits them again.
    }
  }

  /** Starts a new attempt of a task (after a rejected or failed result, or lost keys). */
  private retry(task: RoundTask<unknown>): void {
    if (task.submitted) task.earlier.push(task.jobId);
    task.attempt += 1;
    task.jobId = jobId(this.jobName(task));
    task.submitted = false;
    task.requeued = false;
  }

  /**
   * What arrived within `ms`: results popped from the run's list, and BullMQ's events from where the last read
   * stopped; both empty after `ms` of quiet. The two reads wait side by side, each on its own connection.
   */
  private async nextArrivals(ms: number): Promise<{ results: Buffer[]; events: StreamEvent[] }> {
    this.eventRead ??= pendingRead(this.readEvents().catch(() => []));
    this.resultPop ??= pendingRead(popResult(this.results, this.keys, TICK_MS).catch(() => null));
    let timer: NodeJS.Timeout | undefined;
    const tick = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    });
    try {
      await Promise.race([this.eventRead.promise, this.resultPop.promise, tick]);
    } finally {
      clearTimeout(timer);
    }
    const arrived = { results: [] as Buffer[], events: [] as StreamEvent[] };
    if (this.resultPop.settled) {
      if (this.resultPop.value) arrived.results.push(this.resultPop.value);
      this.resultPop = undefined;
    }
    if (this.eventRead.settled) {
      arrived.events = this.eventRead.value ?? [];
      this.eventRead = undefined;
    }
    return arrived;
  }

  private async readEvents(): Promise<StreamEvent[]> {
    const reply = (await this.events.xread('COUNT', 500, 'BLOCK', 1000, 'STREAMS', this.keys.events, this.lastEventId)) as
      | [string, [string, string[]][]][]
      | null;
    const out: StreamEvent[] = [];
    for (const [, entries] of reply ?? []) {
      for (const [id, list] of entries) {
        const fields: Record<string, string> = {};
        for (let i = 0; i + 1 < list.length; i += 2) fields[list[i]] = list[i + 1];
        out.push({ id, fields });
        this.lastEventId = id;
      }
    }
    return out;
  }

  private apply(arrived: { results: Buffer[]; events: StreamEvent[] }): void {
    for (const entry of arrived.results) this.handleResult(entry);
    for (const event of arrived.events) this.handleEvent(event);
  }

  /** Applies one queue event to the round: a failed job is computed again, a stalled one is reported. */
  private handleEvent(event: StreamEvent): void {
    const { event: type, jobId: id } = event.fields;
    // 'completed' says nothing new: the result itself came through the result list.
    if (type !== 'failed' && type !== 'stalled') return;
    const task = this.openTask(parseJobId(id));
    if (!task || task.result !== undefined) return;
    if (type === 'stalled') {
      task.requeued = true;
      this.options.log(`Job ${id} (${task.label}) stalled: its worker stopped renewing the job's lock (killed or hung). BullMQ put it back in the queue for another worker.`);
    } else if (task.jobId === id) {
      this.retry(task);
      this.options.log(`${capitalize(task.label)} failed on a worker (job ${id}): ${event.fields.failedReason ?? 'no reason given'}. Computing it again (attempt ${task.attempt}).`);
    }
  }

  /** Applies one entry of the result list to the round: a task's result, or a rejection logged and counted. */
  private handleResult(bytes: Buffer): void {
    this.traffic.resultBytes += bytes.length;
    let id: string;
    let worker: string;
    let envelopeBytes: Buffer;
    try {
      const entry = decodeResultEntry(bytes);
      id = entry.jobId;
      worker = JSON.stringify(entry.worker);
      envelopeBytes = entry.envelope;
    } catch (error) {
      if (!(error instanceof CodecError)) throw error;
      // Its job, unknown, is computed again once BullMQ has forgotten it (resubmitVanished).
      this.reject('malformed', `Ignored an unreadable entry of the result list: ${error.message}.`);
      return;
    }
    const name = parseJobId(id);
    const task = this.openTask(name);
    if (!name) {
      this.reject('malformed', `Ignored a result for ${JSON.stringify(id)}, which is no job of this run, from worker ${worker}.`);
      return;
    }
    if (!task) {
      this.reject('late', `Ignored a late result of job ${id} from worker ${worker}: that ${name.kind === 'gradient' ? 'step' : 'evaluation'} is already complete.`);
      return;
    }
    if (task.result !== undefined) {
      this.reject('duplicate', `Ignored a duplicate result for ${task.label} (job ${id}) from worker ${worker}: that shard is already in.`);
      return;
    }
    try {
      if (envelopeBytes.length > shardResultLength(this.options.parameterCount) * 4 + 64 * 1024) {
        throw new RejectedResult('malformed', `the result is ${envelopeBytes.length} bytes, far more than any result of this model`);
      }
      let envelope: ResultEnvelope;
      try {
        envelope = decodeResult(envelopeBytes);
      } catch (error) {
        if (error instanceof CodecError) throw new RejectedResult('malformed', error.message);
        throw error;
      }
      worker = JSON.stringify(envelope.worker);
      task.result = this.check(task, envelope, id, worker);
      this.everServed = true;
    } catch (error) {
      if (!(error instanceof RejectedResult)) throw error;
      // A bad result of an earlier attempt (one taken back, say) changes nothing: the current attempt is already
      // out, and another one would only be computed twice.
      const current = task.jobId === id;
      if (current) this.retry(task);
      this.reject(
        error.reason,
        `Rejected the result for ${task.label} (job ${id}) from worker ${worker}: ${error.message}. ` +
          (current ? `Computing it again (attempt ${task.attempt}).` : `Attempt ${task.attempt} is already on its way.`),
      );
    }
  }

  /** The task a job id names, when its round is open (running, or handed out ahead). */
  private openTask(name: JobName | undefined): RoundTask<unknown> | undefined {
    const round = name ? this.rounds.get(name.round) : undefined;
    return name && round?.kind === name.kind ? round.tasks[name.index] : undefined;
  }

  /** Everything a result must satisfy before it is used; throws RejectedResult. */
  private check<T>(task: RoundTask<T>, envelope: ResultEnvelope, id: string, worker: string): T {
    const expected = subjectPosition(task.data);
    if (envelope.runId !== this.keys.runId || envelope.jobId !== id || envelope.kind !== task.data.kind) {
      throw new RejectedResult('wrong-task', `it names run ${envelope.runId} job ${envelope.jobId} (${envelope.kind}), not run ${this.keys.runId} job ${id}`);
    }
    if (envelope.weightsVersion !== task.data.weightsVersion) {
      throw new RejectedResult('late', `it was computed with weights version ${envelope.weightsVersion}, the task needs version ${task.data.weightsVersion}`);
    }
    if (envelope.step !== expected.step || envelope.shard !== expected.shard) {
      throw new RejectedResult('wrong-task', `it names step ${envelope.step} shard ${envelope.shard}`);
    }
    if (this.secret) {
      if (!envelope.signature) throw new RejectedResult('unsigned', 'it is not signed, and this run accepts only results signed with TRAINER_SECRET');
      const subject = { runId: this.keys.runId, kind: task.data.kind, ...expected, weightsVersion: task.data.weightsVersion, taskDigest: task.digest };
      if (!verifyResult(this.secret, subject, envelope.payload, envelope.signature)) {
        throw new RejectedResult('bad-signature', 'its signature does not verify (another TRAINER_SECRET, or a forged or altered result)');
      }
    }
    return task.decode(envelope, worker);
  }

  private reject(reason: RejectReason, line: string): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
    this.options.log(line);
  }

  /**
   * The slow path against lost jobs: a job of an open task that BullMQ no longer knows (and whose completion
   * never came) is submitted again.
   */
  private async resubmitVanished(open: RoundTask<unknown>[]): Promise<void> {
    try {
      const states = await withDeadline(Promise.all(open.map((t) => (t.submitted ? this.queue.getJobState(t.jobId) : 'unsent'))), 3000, () => new Error('timed out'));
      const vanished = open.filter((t, i) => states[i] === 'unknown');
      if (vanished.length === 0) return;
      this.apply(await this.nextArrivals(50));
      for (const task of vanished.filter((t) => t.result === undefined && t.submitted)) {
        this.options.log(`Job ${task.jobId} (${task.label}) is gone from the queue without a result; submitting it again.`);
        this.retry(task);
      }
    } catch {
      // Redis away: nothing to learn now.
    }
  }

  /** "step 3 shard 0 (on worker a for 12 s), step 3 shard 1 (queued 12 s, no worker has taken it); no worker serves this run". */
  private async describeWaiting(open: RoundTask<unknown>[], now: number): Promise<string> {
    const parts: string[] = [];
    let presences: WorkerPresence[] | undefined;
    try {
      await withDeadline(
        (async () => {
          for (const task of open) {
            const job = task.submitted ? await this.queue.getJob(task.jobId) : undefined;
            const state = job ? await job.getState() : 'unknown';
            if (job && state === 'active') {
              const since = job.processedOn ? ` for ${Math.floor((now - job.processedOn) / 1000)} s` : '';
              parts.push(`${task.label} (job ${task.jobId} on worker ${job.processedBy ?? '(unnamed)'}${since})`);
            } else if (job && (state === 'waiting' || state === 'prioritized' || state === 'delayed')) {
              parts.push(`${task.label} (job ${task.jobId} queued for ${Math.floor((now - job.timestamp) / 1000)} s; no worker has taken it)`);
            } else {
              parts.push(`${task.label} (job ${task.jobId}: ${task.submitted ? state : 'not yet submitted'})`);
            }
          }
          presences = await readPresences(this.redis, this.keys);
        })(),
        3000,
        () => new Error('timed out'),
      );
    } catch {
      // Fall through with what we have.
    }
    const described = new Set(parts.map((p) => p.split(' (')[0]));
    for (const task of open) if (!described.has(task.label)) parts.push(`${task.label} (job ${task.jobId})`);
    const who = presences ? describePresences(presences) : `Redis at ${this.target.display} does not answer`;
    return `${parts.join(', ')}; ${who}`;
  }

  // ---- connection, heartbeat, recovery ----

  /** How long a lost connection is ridden out: the option, else $TRAINER_REDIS_OUTAGE_SECONDS, else 60 s. */
  private outageLimitSeconds(): number {
    const fromEnv = Number(process.env.TRAINER_REDIS_OUTAGE_SECONDS);
    return this.options.redisOutageSeconds ?? (Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : DEFAULT_OUTAGE_S);
  }

  /** Throws RedisConnectionError once Redis has been unreachable for longer than the outage limit. */
  private checkConnection(now: number): void {
    const limitMs = this.outageLimitSeconds() * 1000;
    if (this.disconnectedSince !== undefined && now - this.disconnectedSince > limitMs) {
      throw new RedisConnectionError(
        `Lost the connection to Redis at ${this.target.display} ${Math.round((now - this.disconnectedSince) / 1000)} s ago` +
          `${this.lastConnectionError ? ` (${this.lastConnectionError})` : ''} and it has not come back. Nothing of the unfinished step was applied: ` +
          'the checkpoint in the output folder holds the last completed step. Once Redis is back, run the coordinator again with --resume.',
      );
    }
  }

  /**
   * Runs a Redis operation, riding out a disconnection up to the outage limit: it fails (RedisConnectionError)
   * as soon as Redis has been away that long, or when the operation itself fails.
   */
  private async whileConnected<T>(operation: () => Promise<T>, what: string): Promise<T> {
    let watch: NodeJS.Timeout | undefined;
    const outage = new Promise<never>((_, reject) => {
      watch = setInterval(() => {
        try {
          this.checkConnection(Date.now());
        } catch (error) {
          reject(error);
        }
      }, 250);
    });
    try {
      return await Promise.race([operation(), outage]);
    } catch (error) {
      if (error instanceof RedisConnectionError) throw error;
      throw new RedisConnectionError(
        `Redis at ${this.target.display} failed while ${what} (${(error as Error).message}). The checkpoint in the output folder holds ` +
          'the last completed step; once Redis works again, run the coordinator again with --resume.',
        { cause: error },
      );
    } finally {
      clearInterval(watch);
    }
  }

  private async beat(): Promise<void> {
    if (this.heartbeatBusy || this.closed) return;
    this.heartbeatBusy = true;
    try {
      const ttlMs = (this.options.announceTtlSeconds ?? DEFAULT_ANNOUNCE_TTL_S) * 1000;
      const alive = await withDeadline(renewAnnouncement(this.redis, this.keys, ttlMs), ttlMs, () => new Error('timed out'));
      if (!alive) this.runLost = true;
      const presences = await withDeadline(readPresences(this.redis, this.keys), ttlMs, () => new Error('timed out'));
      this.serving = presences.filter((p) => p.state === 'serving').length;
      if (this.serving > 0) this.everServed = true;
      if (this.runLost) await this.recoverRun();
    } catch {
      // Redis away: checkConnection() in the round loop decides when that becomes an error.
    } finally {
      this.heartbeatBusy = false;
    }
  }

  /** The run's keys vanished (Redis restarted without persistence, or swept): announce it and its weights again. */
  private async recoverRun(): Promise<void> {
    if (!this.runLost) return;
    const ttlMs = (this.options.announceTtlSeconds ?? DEFAULT_ANNOUNCE_TTL_S) * 1000;
    try {
      await withDeadline(
        (async () => {
          await announceRun(this.redis, this.keys, this.announcement, ttlMs);
          if (this.currentWeights) await this.weights.publish(this.currentVersion, this.currentWeights);
        })(),
        5000,
        () => new Error('timed out'),
      );
      this.runLost = false;
      this.recoveries += 1;
      this.options.log(
        `Run ${this.keys.runId}'s keys vanished from Redis (restarted without persistence, or removed by someone): ` +
          `announced the run again and republished weights version ${this.currentVersion}.`,
      );
    } catch {
      // Try again on the next tick.
    }
  }

  /** Tells workers to leave, waits (briefly) until they have, then deletes every key of the run. */
  private async removeRun(): Promise<void> {
    crashPoint('redis:before-cleanup');
    const ttlMs = (this.options.announceTtlSeconds ?? DEFAULT_ANNOUNCE_TTL_S) * 1000;
    await announceRun(this.redis, this.keys, { ...this.announcement, state: 'closing' }, ttlMs);
    // Workers look every half second; give the ones that served a moment to see 'closing' (even if their
    // presence keys were lost with a Redis restart), and at most 5 s to finish leaving.
    const started = Date.now();
    while (Date.now() - started < 5000) {
      const presences = await readPresences(this.redis, this.keys);
      const settled = !this.everServed || Date.now() - started > 1200;
      if (settled && !presences.some((p) => p.state === 'serving')) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await this.queue.close().catch(() => undefined);
    await deleteRunKeys(this.redis, this.keys);
  }
}

/**
 * 'auto' on the coordinator, as local threads choose: tfjs-node when installed here (the workers need it too),
 * else the model's fused WebAssembly module when it has one, else wasm.
 */
export function resolveRemoteBackend(choice: BackendChoice, model: string): BackendName {
  if (choice !== 'auto') return choice;
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node');
    return 'node';
  } catch {
    return hasFusedImplementation(model) ? 'fused' : 'wasm';
  }
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Whether two steps' shard lists are the same work (step, shard, weights version and image indices). */
function sameShards(a: readonly ShardTask[], b: readonly ShardTask[]): boolean {
  return a === b || (a.length === b.length && a.every((x, i) => {
    const y = b[i];
    return x.step === y.step && x.shard === y.shard && x.weightsVersion === y.weightsVersion &&
      x.indices.length === y.indices.length && x.indices.every((index, k) => index === y.indices[k]);
  }));
}
