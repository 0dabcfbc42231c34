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
 *
 * The parts, each in its file: a round's jobs, results and retries (./round-runner.ts), the next step's jobs
 * handed out ahead and their take-backs (./hand-out-ahead.ts), the run's announcement, heartbeat, recovery and
 * removal (./run-life.ts), riding out a lost connection (./connection-watch.ts).
 */
import os from 'node:os';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { engineNumerics, type BackendChoice, type BackendName } from '../../compute/backend.ts';
import { autoCandidates } from '../../compute/auto-backend.ts';
import { PLAIN_RECIPE, type TrainingRecipe } from '../../compute/training-recipe.ts';
import type { Cifar10Dataset } from '../../data/cifar10-dataset.ts';
import { ShardResultError } from '../../errors/index.ts';
import type { EvalResult, EvalTask, ShardTask, WorkerPool } from '../worker-pool.ts';
import { shardResultLength, validateShardResult } from '../shard-result.ts';
import { ResultBuffers } from '../result-buffers.ts';
import { checkRedis, openClient, parseRedisUrl, redisConnectionError, type RedisTarget, withDeadline } from './connection.ts';
import { ConnectionWatch } from './connection-watch.ts';
import { HandOutAhead } from './hand-out-ahead.ts';
import { QUEUE_NAME, RunKeys, newRunId, resolveNamespace } from './keys.ts';
import { CodecError, type JobData, decodeEvalPayload, decodeGradientPayload, encodeIndices, JOB_FORMAT } from './payload-codec.ts';
import { secretCheck, secretFromEnv } from './result-signing.ts';
import { RoundRunner } from './round-runner.ts';
import { RejectedResult, type RoundTask, newRoundTask } from './round-task.ts';
import { PROTOCOL_VERSION, type RunAnnouncement } from './run-announcement.ts';
import { DEFAULT_ANNOUNCE_TTL_S, RunLife } from './run-life.ts';
import { sweepAbandonedRuns } from './run-cleanup.ts';
import { WeightsStore } from './weights-store.ts';

export type { RejectReason } from './round-task.ts';

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

/** The connections a pool holds: one for commands, one each for the two blocking reads, one for BullMQ. */
interface Clients {
  readonly redis: Redis;
  readonly events: Redis;
  readonly results: Redis;
  readonly queue: Redis;
}

export class RedisPool implements WorkerPool {
  private currentVersion = -1;
  private currentWeights: Float32Array | undefined;
  private closed = false;
  private weightsBytes = 0;
  /** Where gradients are decoded to, reused once the trainer recycles them. */
  private readonly gradients: ResultBuffers;
  private readonly rounds: RoundRunner;

  private constructor(
    private readonly options: RedisPoolOptions,
    private readonly target: RedisTarget,
    private readonly clients: Clients,
    private readonly queue: Queue,
    readonly keys: RunKeys,
    private readonly weights: WeightsStore,
    private readonly watch: ConnectionWatch,
    private readonly life: RunLife,
    private readonly ahead: HandOutAhead,
    secret: string | undefined,
    readonly backend: BackendName,
    readonly numerics: string,
  ) {
    this.gradients = new ResultBuffers(options.parameterCount);
    this.rounds = new RoundRunner({
      queue, redis: clients.redis, events: clients.events, results: clients.results, keys, display: target.display, secret,
      maxResultBytes: shardResultLength(options.parameterCount) * 4 + 64 * 1024,
      shardTimeoutSeconds: options.shardTimeoutSeconds, waitLogSeconds: options.waitLogSeconds, life, watch, ahead, log: options.log,
    });
  }

  static async create(options: RedisPoolOptions): Promise<RedisPool> {
    const target = parseRedisUrl(options.url);
    await checkRedis(target);
    const namespace = resolveNamespace(options.namespace);
    const backend = resolveRemoteBackend(options.backend, options.model);
    // The coordinator's engine defines the run's numerics; workers whose engine differs refuse the run.
    const numerics = await engineNumerics(backend);
    const secret = options.secret ?? secretFromEnv();
    const keys = new RunKeys(namespace, newRunId());
    const host = os.hostname();
    const owner = options.owner !== undefined ? `${host}:${options.owner}` : `${host}:pid ${process.pid}`;

    const clients: Clients = {
      redis: openClient(target, 'cifar-dp:coordinator'),
      events: openClient(target, 'cifar-dp:coordinator-events'),
      results: openClient(target, 'cifar-dp:coordinator-results'),
      // BullMQ gets a client of ours, so that closing never waits on a connection BullMQ keeps retrying.
      queue: openClient(target, 'cifar-dp:coordinator-queue'),
    };
    const { redis } = clients;
    const watch = new ConnectionWatch(redis, target, options.log, options.redisOutageSeconds);
    let queue: Queue | undefined;
    try {
      await withDeadline(redis.ping(), 10_000, () => redisConnectionError(target, new Error('no answer to PING within 10 s')));
      await sweepAbandonedRuns(redis, namespace, { except: keys.runId, owner: options.owner !== undefined ? owner : undefined, log: options.log });
      queue = new Queue(QUEUE_NAME, {
        connection: clients.queue,
        prefix: keys.prefix,
        streams: { events: { maxLen: 2000 } },
        defaultJobOptions: { attempts: 1, removeOnComplete: true, removeOnFail: true },
      });
      queue.on('error', () => undefined);
      await withDeadline(queue.waitUntilReady(), 10_000, () => redisConnectionError(target, new Error('the BullMQ queue did not get ready within 10 s')));
      const announcement: RunAnnouncement = {
        protocol: PROTOCOL_VERSION, runId: keys.runId, state: 'running', model: options.model, parameterCount: options.parameterCount,
        classes: options.dataset.classNames?.length ?? 10, backend, numerics, dataFingerprint: options.dataset.fingerprint,
        trainCount: options.dataset.train.count, testCount: options.dataset.test.count, recipe: options.recipe ?? PLAIN_RECIPE,
        signed: secret !== undefined,
        ...(secret ? { secretCheck: secretCheck(secret, keys.runId) } : {}), owner, host, pid: process.pid, startedAt: new Date().toISOString(),
      };
      const weights = new WeightsStore(redis, keys, secret);
      let pool: RedisPool | undefined;
      const republish = async () => {
        await pool?.republishWeights();
        return pool?.currentVersion ?? -1;
      };
      const life = await RunLife.start(redis, keys, announcement, options.announceTtlSeconds ?? DEFAULT_ANNOUNCE_TTL_S, republish, options.log);
      const ahead = new HandOutAhead(queue, redis, keys, () => watch.connected);
      pool = new RedisPool(options, target, clients, queue, keys, weights, watch, life, ahead, secret, backend, numerics);
      options.log(
        `Run ${keys.runId} announced on Redis ${target.display} (namespace ${namespace}, backend ${backend}` +
          `${secret ? ', results must be signed with TRAINER_SECRET' : ''}). Start workers with: npm run worker -- --redis <url>`,
      );
      return pool;
    } catch (error) {
      await queue?.close().catch(() => undefined);
      for (const client of Object.values(clients)) client.disconnect();
      if (error instanceof Error && error.name === 'RedisConnectionError') throw error;
      throw redisConnectionError(target, error);
    }
  }

  describe(): string {
    const serving = this.life.serving;
    const who = serving > 0 ? `${serving} remote worker${serving === 1 ? '' : 's'}` : 'remote workers';
    return `${who} via Redis ${this.target.display} (run ${this.keys.runId}, ${this.backend})`;
  }

  /** Results not used so far, by reason. */
  rejectedResults(): Readonly<Record<string, number>> {
    return this.rounds.rejectedResults();
  }

  /** Bytes this pool wrote as weights and read as results, and jobs it submitted. */
  trafficStats(): Readonly<{ weightsBytes: number; resultBytes: number; jobs: number }> {
    return { weightsBytes: this.weightsBytes, ...this.rounds.traffic };
  }

  async publishWeights(version: number, weights: Float32Array): Promise<void> {
    this.currentVersion = version;
    // A copy (the trainer updates its array in place), into one buffer reused every step.
    if (this.currentWeights?.length !== weights.length) this.currentWeights = new Float32Array(weights.length);
    this.currentWeights.set(weights);
    this.weightsBytes += await this.watch.whileConnected(() => this.weights.publish(version, weights), 'publishing the weights');
  }

  /** The current weights again, after Redis lost them. */
  private async republishWeights(): Promise<void> {
    if (this.currentWeights) await this.weights.publish(this.currentVersion, this.currentWeights);
  }

  recycle(results: readonly Float32Array[]): void {
    this.gradients.give(results);
  }

  /**
   * With `next`, the next step's shards go out as jobs too, right behind this step's: a worker that finishes
   * its shard takes one of them at once and waits for its weights on the feed (./hand-out-ahead.ts).
   */
  async computeGradients(tasks: readonly ShardTask[], next?: readonly ShardTask[]): Promise<Float32Array[]> {
    let round: number;
    let roundTasks: RoundTask<Float32Array>[];
    const handedOut = this.ahead.take(tasks);
    if (handedOut) {
      ({ round, tasks: roundTasks } = handedOut);
    } else {
      await this.dropAhead();
      round = this.rounds.nextRound();
      roundTasks = this.gradientTasks(round, tasks);
    }
    if (next && next.length > 0) {
      const nextRound = this.rounds.nextRound();
      const nextTasks = this.gradientTasks(nextRound, next);
      this.ahead.set(nextRound, next, nextTasks);
      this.rounds.open(nextRound, 'gradient', nextTasks);
    }
    return this.rounds.run('gradient', round, roundTasks);
  }

  private gradientTasks(round: number, tasks: readonly ShardTask[]): RoundTask<Float32Array>[] {
    const expected = shardResultLength(this.options.parameterCount);
    return tasks.map((task, index) => {
      const data: JobData = {
        v: JOB_FORMAT, kind: 'gradient', round, index, step: task.step, shard: task.shard, weightsVersion: task.weightsVersion,
        indices: encodeIndices(task.indices),
      };
      return newRoundTask(data, `step ${task.step} shard ${task.shard}`, (envelope, worker) => {
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
    const dropped = await this.ahead.drop();
    if (dropped !== undefined) this.rounds.forget(dropped);
  }

  async evaluate(tasks: readonly EvalTask[]): Promise<EvalResult[]> {
    // Never needed by the trainer (it hands out ahead only within an epoch): held jobs would wait for weights
    // that come only after this evaluation.
    await this.dropAhead();
    const round = this.rounds.nextRound();
    const classes = this.options.dataset.classNames?.length ?? 10;
    return this.rounds.run('evaluate', round, tasks.map((task, index) => {
      const data: JobData = {
        v: JOB_FORMAT, kind: 'evaluate', round, index, weightsVersion: task.weightsVersion, start: task.start, end: task.end,
        ...(task.tta ? { tta: true as const } : {}),
      };
      return newRoundTask(data, `test images ${task.start}–${task.end - 1}`, (envelope) => {
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
    this.life.stop();
    this.watch.close();
    const rejected = Object.entries(this.rounds.rejectedResults()).map(([reason, n]) => `${n} ${reason}`);
    if (rejected.length > 0) this.options.log(`Results not used during this run: ${rejected.join(', ')}.`);
    const { redis } = this.clients;
    try {
      if (!this.watch.connected) throw new Error('not connected');
      await withDeadline(this.life.remove(() => this.queue.close()), 15_000, () => new Error('Redis did not answer within 15 s'));
    } catch (error) {
      this.options.log(
        `Could not remove run ${this.keys.runId}'s keys from Redis ${this.target.display} (${(error as Error).message}); ` +
          'the next coordinator or worker of this namespace removes them once the run announcement has expired.',
      );
    } finally {
      const quick = <T>(p: Promise<T>) => withDeadline(p, 2000, () => new Error('timed out')).then(() => true, () => false);
      const connected = this.watch.connected;
      if (connected) await quick(this.queue.close());
      this.clients.queue.disconnect();
      this.clients.events.disconnect();
      this.clients.results.disconnect();
      if (!connected || !(await quick(redis.quit()))) redis.disconnect();
    }
  }
}

/** 'auto' on the coordinator, as local threads choose (../../compute/auto-backend.ts); the workers need that backend too. */
export function resolveRemoteBackend(choice: BackendChoice, model: string): BackendName {
  return choice !== 'auto' ? choice : autoCandidates(model)[0];
}
