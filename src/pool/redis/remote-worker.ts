/**
 * The remote worker (`npm run worker`, workers/remote-worker.ts): a long-lived server of whichever runs are
 * active in its Redis namespace. Every half second it reads `<namespace>:runs` and each run's announcement; for
 * a run it can serve (same data fingerprint, a backend it runs, the right secret, a model it knows) it starts
 *   - a ThreadPool (the coordinator's local threads, ../threads/); with --concurrency 1 it computes on this
 *     thread instead, which saves a hop to a thread and back per job and only delays BullMQ's lock renewal by
 *     one task's compute, far less than the lock;
 *   - a BullMQ Worker on the run's queue with concurrency = number of threads, whose jobs ./job-processor.ts
 *     serves;
 *   - a WeightsFeed (./weights-feed.ts) reading the run's weights as they are published.
 * A run it cannot serve is refused once, with the reason logged and published for the coordinator. When the run
 * announces 'closing', its announcement is gone for a while, or its coordinator starts again (a new attempt of
 * the same owner), the worker leaves it.
 */
import os from 'node:os';
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { BackendChoice } from '../../compute/backend.ts';
import type { Cifar10Dataset } from '../../data/cifar10-dataset.ts';
import { DatasetMismatchError } from '../../errors/index.ts';
import { MODELS, modelByName } from '../../model/model-registry.ts';
import { parameterCount } from '../../model/parameter-vector.ts';
import { ThreadPool } from '../threads/thread-pool.ts';
import { type RedisTarget, openClient, reconnectingOptions, withDeadline } from './connection.ts';
import { QUEUE_NAME, type RunKeys } from './keys.ts';
import { PROTOCOL_VERSION, type RunAnnouncement, listRuns } from './run-announcement.ts';
import { deleteRunKeys } from './run-cleanup.ts';
import { WeightsFeed } from './weights-feed.ts';
import { WeightsGate } from './weights-gate.ts';
import { removePresence, writePresence } from './worker-presence.ts';
import { secretCheck } from './result-signing.ts';
import { JobProcessor, type ServedRun } from './job-processor.ts';

export interface RemoteWorkerOptions {
  readonly target: RedisTarget;
  readonly namespace: string;
  readonly dataset: Cifar10Dataset;
  /** Compute threads = jobs at once (a tfjs-node binding not built by npm run native:install gets one). */
  readonly concurrency: number;
  /** 'auto': compute with whatever backend the run announces; anything else: refuse runs on another backend. */
  readonly backend: BackendChoice;
  /** BullMQ lock duration and stalled-check interval: a killed worker's job goes back to the queue after ~2–3× this. */
  readonly lockSeconds: number;
  /** This worker's name in jobs, logs and the coordinator's messages (default host:pid). */
  readonly name?: string;
  /** TRAINER_SECRET: results are signed with it; runs that require another secret are refused. */
  readonly secret?: string;
  readonly log: (line: string) => void;
  /** Log every job (default false). */
  readonly verbose?: boolean;
  /** How often to look for runs (default 500 ms). */
  readonly pollMs?: number;
  /** A run whose announcement is gone this long is left (and its keys removed). Default 5 s. */
  readonly graceMs?: number;
  /** Sleep this long before each job: makes a worker slow on purpose (tests of stalls and timeouts). */
  readonly jobDelayMs?: number;
}

const PRESENCE_TTL_MS = 10_000;
/** How long a worker may take no job while jobs wait before its queue consumer is replaced. */
const IDLE_BEFORE_REVIVE_MS = 4000;

/** A run this worker serves. */
interface Attached extends ServedRun {
  readonly keys: RunKeys;
  /** The run's BullMQ consumer (replaced when it stops taking jobs, see poll). */
  bull: Worker;
  readonly since: string;
  /** When a job last started or ended here. */
  lastActivity: number;
  lastPresence: number;
  /** Jobs being processed (a forced close does not wait for them). */
  readonly inFlight: Set<Promise<unknown>>;
}

export class RemoteWorker {
  readonly id: string;
  private readonly redis: Redis;
  private readonly jobs: JobProcessor;
  private readonly attached = new Map<string, Attached>();
  /** Runs refused, by id (refused once, logged once). */
  private readonly refused = new Map<string, string>();
  /** Runs being attached right now (ThreadPool start-up takes a moment). */
  private readonly attaching = new Set<string>();
  /** When each known run was last seen announced. */
  private readonly lastSeen = new Map<string, number>();
  /** Clean-ups after runs that ended while jobs were still in hand. */
  private readonly sweeps = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopping: Promise<void> | undefined;
  private stopResolve!: () => void;
  /** Resolves once stop() has finished. */
  readonly stopped: Promise<void>;

  constructor(private readonly options: RemoteWorkerOptions) {
    this.id = options.name ?? `${os.hostname()}:${process.pid}`;
    this.redis = openClient(options.target, `cifar-dp:worker:${this.id}`);
    this.jobs = new JobProcessor({
      id: this.id, redis: this.redis, dataset: options.dataset, secret: options.secret, log: options.log, verbose: options.verbose,
      jobDelayMs: options.jobDelayMs,
    });
    this.stopped = new Promise((resolve) => {
      this.stopResolve = resolve;
    });
  }

  /** Starts looking for runs. */
  start(): void {
    const poll = () => {
      void this.poll().finally(() => {
        if (!this.stopping) this.timer = setTimeout(poll, this.options.pollMs ?? 500);
      });
    };
    poll();
  }

  /** Number of jobs done per run id. */
  jobsDone(): Record<string, number> {
    return Object.fromEntries([...this.attached].map(([id, a]) => [id, a.jobs]));
  }

  /**
   * Leaves every run and disconnects. Graceful: active jobs are finished and completed first. With `force`,
   * they are abandoned: their locks expire and BullMQ hands them to another worker.
   */
  stop(force = false): Promise<void> {
    if (!this.stopping) {
      clearTimeout(this.timer);
      this.stopping = (async () => {
        await Promise.all([...this.attached.keys()].map((id) => this.detach(id, force ? 'stopping now' : 'stopping', force)));
        await withDeadline(Promise.allSettled([...this.sweeps]), 5000, () => new Error('timed out')).catch(() => undefined);
        await withDeadline(this.redis.quit(), 2000, () => new Error('timed out')).catch(() => undefined);
        this.redis.disconnect();
        this.stopResolve();
      })();
    } else if (force) {
      for (const a of this.attached.values()) void a.bull.close(true);
    }
    return this.stopping;
  }

  private async poll(): Promise<void> {
    if (this.polling || this.stopping) return;
    this.polling = true;
    try {
      const runs = await listRuns(this.redis, this.options.namespace);
      const now = Date.now();
      const listed = new Set<string>();
      for (const { keys, announcement } of runs) {
        listed.add(keys.runId);
        if (announcement) this.lastSeen.set(keys.runId, now);
        if (announcement?.state === 'closing') {
          if (this.attached.has(keys.runId)) await this.detach(keys.runId, 'the run has ended', true);
          continue;
        }
        if (!announcement) {
          const seen = this.lastSeen.get(keys.runId) ?? now;
          if (!this.lastSeen.has(keys.runId)) this.lastSeen.set(keys.runId, now);
          if (now - seen > (this.options.graceMs ?? 5000)) {
            if (this.attached.has(keys.runId)) await this.detach(keys.runId, 'its coordinator is gone', true);
            const removed = await deleteRunKeys(this.redis, keys);
            this.lastSeen.delete(keys.runId);
            this.options.log(`Removed ${removed} Redis keys of run ${keys.runId}, whose coordinator stopped without cleaning up.`);
          }
          continue;
        }
        // A new attempt of a run this worker serves (its coordinator restarted with --resume): the old attempt's
        // jobs will never be used, leave it now rather than after the grace period.
        for (const [id, other] of this.attached) {
          if (id !== keys.runId && other.announcement.owner === announcement.owner && other.announcement.startedAt < announcement.startedAt) {
            await this.detach(id, `its coordinator started again as run ${keys.runId}`, true);
          }
        }
        const mine = this.attached.get(keys.runId);
        if (mine) {
          // Every second or so: quickly back after Redis lost its data, so the coordinator knows whom to wait for.
          if (now - mine.lastPresence > 1000) {
            mine.lastPresence = now;
            await this.present(keys, 'serving', mine.pool.threads, mine.since, mine.announcement.backend);
          }
          await this.reviveConsumer(mine, now);
        } else if (!this.attaching.has(keys.runId)) {
          const reason = this.refused.get(keys.runId);
          if (reason !== undefined) {
            if (now - (this.lastSeen.get(`refused:${keys.runId}`) ?? 0) > PRESENCE_TTL_MS / 3) {
              this.lastSeen.set(`refused:${keys.runId}`, now);
              await this.present(keys, 'refused', 0, new Date().toISOString(), undefined, reason);
            }
          } else {
            this.attaching.add(keys.runId);
            void this.attach(keys, announcement).finally(() => this.attaching.delete(keys.runId));
          }
        }
      }
      // Runs no longer listed at all: gone from Redis (ended, or Redis lost its data: then it comes back soon).
      for (const id of [...this.attached.keys()]) {
        if (listed.has(id)) continue;
        const seen = this.lastSeen.get(id) ?? now;
        if (now - seen > (this.options.graceMs ?? 5000)) {
          const keys = this.attached.get(id)!.keys;
          await this.detach(id, 'it is no longer announced', true);
          // Its coordinator is gone and Redis lost the run (restart): remove what BullMQ re-created meanwhile.
          await deleteRunKeys(this.redis, keys);
          this.lastSeen.delete(id);
        }
      }
    } catch (error) {
      if (!this.stopping) this.options.log(`Worker ${this.id}: could not read the runs from Redis (${(error as Error).message}); trying again.`);
    } finally {
      this.polling = false;
    }
  }

  private async present(keys: RunKeys, state: 'serving' | 'refused', concurrency: number, since: string, backend?: string, reason?: string): Promise<void> {
    await writePresence(this.redis, keys, { worker: this.id, state, concurrency, since, ...(backend ? { backend } : {}), ...(reason ? { reason } : {}) }, PRESENCE_TTL_MS);
  }

  /** Why this worker cannot serve a run, or undefined when it can. */
  private refusal(a: RunAnnouncement): string | undefined {
    const data = this.options.dataset;
    if (a.protocol !== PROTOCOL_VERSION) {
      return `the run speaks protocol ${a.protocol}, this worker ${PROTOCOL_VERSION}: run the same version of the code on the coordinator and the workers`;
    }
    if (a.dataFingerprint !== data.fingerprint) {
      return new DatasetMismatchError(
        `its data set differs from this worker's: the coordinator's CIFAR-10 files have fingerprint ${a.dataFingerprint.slice(0, 12)}…, ` +
          `the files in ${data.dir} have ${data.fingerprint.slice(0, 12)}…. Give every worker the coordinator's files (--data or CIFAR10_DIR).`,
      ).message;
    }
    if (a.trainCount > data.train.count || a.testCount > data.test.count) {
      return `the run uses ${a.trainCount} training and ${a.testCount} test images, this worker has ${data.train.count} and ${data.test.count}`;
    }
    if (!(a.model in MODELS)) return `model '${a.model}' is unknown to this worker: update its code`;
    if (parameterCount(modelByName(a.model)) !== a.parameterCount) {
      return `model '${a.model}' has ${a.parameterCount} parameters on the coordinator but ${parameterCount(modelByName(a.model))} here: run the same code everywhere`;
    }
    if (this.options.backend !== 'auto' && this.options.backend !== a.backend) {
      return `the run computes with backend '${a.backend}' but this worker was started with --backend ${this.options.backend}; ` +
        `every shard must come from the same backend. Restart it with --backend ${a.backend} (or auto)`;
    }
    if (a.signed && !this.options.secret) return 'the run accepts only signed results: set TRAINER_SECRET to the coordinator\'s secret';
    if (a.signed && a.secretCheck !== secretCheck(this.options.secret!, a.runId)) return 'TRAINER_SECRET differs from the coordinator\'s';
    return undefined;
  }

  private async refuse(keys: RunKeys, reason: string): Promise<void> {
    this.refused.set(keys.runId, reason);
    this.lastSeen.set(`refused:${keys.runId}`, Date.now());
    this.options.log(`Worker ${this.id}: refusing run ${keys.runId}: ${reason}.`);
    await this.present(keys, 'refused', 0, new Date().toISOString(), undefined, reason).catch(() => undefined);
  }

  private async attach(keys: RunKeys, a: RunAnnouncement): Promise<void> {
    const reason = this.refusal(a);
    if (reason) return this.refuse(keys, reason);
    let pool: ThreadPool;
    try {
      pool = await ThreadPool.create({
        model: a.model, parameterCount: a.parameterCount, dataset: this.options.dataset, threads: this.options.concurrency,
        backend: a.backend, recipe: a.recipe, log: this.options.log,
        // One job at a time: computed on this thread, with no hop to a worker thread and back.
        callerComputes: this.options.concurrency === 1,
        // Jobs come through Redis milliseconds apart, and this machine may be shared: threads sleep between them.
        spinMs: 0,
      });
    } catch (error) {
      return this.refuse(keys, `backend '${a.backend}' does not start here: ${(error as Error).message}`);
    }
    if (pool.backend !== a.backend) {
      await pool.close();
      return this.refuse(keys, `the threads started backend '${pool.backend}', the run needs '${a.backend}'`);
    }
    if (pool.numerics !== a.numerics) {
      await pool.close();
      return this.refuse(keys, `this worker's ${a.backend} engine would not reproduce the run's bytes: the run computes with "${a.numerics}", ` +
        `this worker with "${pool.numerics}". Serve it from a machine whose engine matches`);
    }
    if (this.stopping) {
      await pool.close();
      return;
    }
    const gate = new WeightsGate();
    const feed = new WeightsFeed(
      openClient(this.options.target, `cifar-dp:worker:${this.id}:weights`), this.redis, keys, a.parameterCount, this.options.secret,
      (message) => this.options.log(`Worker ${this.id} on run ${keys.runId}: ${message}`),
    );
    const since = new Date().toISOString();
    const served = { keys, announcement: a, pool, gate, feed, since, jobs: 0, lastPresence: Date.now(), lastActivity: Date.now(), inFlight: new Set<Promise<unknown>>() };
    const attached: Attached = Object.assign(served, { bull: this.consumer(served) });
    this.attached.set(keys.runId, attached);
    await this.present(keys, 'serving', pool.threads, since, a.backend).catch(() => undefined);
    this.options.log(
      `Worker ${this.id}: serving run ${keys.runId} (model ${a.model}, backend ${pool.backend}, ${pool.threads} thread${pool.threads === 1 ? '' : 's'}, ` +
        `${a.trainCount} training images${a.recipe.augmentation !== 'none' ? `, ${a.recipe.augmentation} augmentation` : ''}${a.recipe.labelSmoothing > 0 ? `, label smoothing ${a.recipe.labelSmoothing}` : ''}` +
        `${a.signed ? ', signed results' : ''}).`,
    );
  }

  /** A BullMQ consumer of the run's queue, running, whose jobs ./job-processor.ts serves. */
  private consumer(attached: Omit<Attached, 'bull'>): Worker {
    const { keys, pool, feed } = attached;
    const lockMs = Math.round(this.options.lockSeconds * 1000);
    const bull = new Worker(QUEUE_NAME, (job: Job) => {
      attached.lastActivity = Date.now();
      const work = this.jobs.process(keys, attached, job);
      attached.inFlight.add(work);
      void work.catch(() => undefined).finally(() => {
        attached.inFlight.delete(work);
        attached.lastActivity = Date.now();
      });
      return work;
    }, {
      connection: reconnectingOptions(this.options.target, `cifar-dp:worker:${this.id}:bullmq`),
      prefix: keys.prefix,
      name: this.id,
      concurrency: pool.threads,
      lockDuration: lockMs,
      stalledInterval: lockMs,
      maxStalledCount: 3,
      drainDelay: 2,
      autorun: false,
    });
    const lastSaid = new Map<string, number>();
    bull.on('error', (error) => {
      // While Redis is away BullMQ reports every reconnection attempt: say each thing once per 30 s.
      const now = Date.now();
      if (this.stopping || now - (lastSaid.get(error.message) ?? 0) < 30_000) return;
      lastSaid.set(error.message, now);
      this.options.log(`Worker ${this.id} on run ${keys.runId}: ${error.message}`);
    });
    // A job whose lock cannot be renewed is gone from Redis (restarted, say): if it still waits for its
    // weights, drop it, so this worker takes the jobs the coordinator resubmits instead of waiting for nothing.
    bull.on('lockRenewalFailed', (jobIds: string[]) => feed.drop(jobIds));
    if (this.options.verbose) {
      bull.on('failed', (job, error) => this.options.log(`Job ${job?.id} failed here: ${error.message}`));
    }
    void bull.run().catch((error: unknown) => this.options.log(`Worker ${this.id}: BullMQ worker of run ${keys.runId} stopped: ${(error as Error).message}`));
    return bull;
  }

  /**
   * BullMQ's consumer can stay blocked on a connection that did not come back after a Redis restart, taking no
   * job while jobs wait. When this worker has been idle for a while and the run's queue holds waiting jobs, the
   * consumer is replaced (the jobs in hand, if any, are finished first: only an idle consumer is replaced).
   */
  private async reviveConsumer(a: Attached, now: number): Promise<void> {
    if (a.inFlight.size > 0 || now - a.lastActivity < IDLE_BEFORE_REVIVE_MS) return;
    a.lastActivity = now; // look again only after another idle spell
    const waiting = await this.redis.llen(`${a.keys.prefix}:${QUEUE_NAME}:wait`);
    if (waiting === 0) return;
    this.options.log(`Worker ${this.id} on run ${a.keys.runId}: ${waiting} job${waiting === 1 ? '' : 's'} waiting but none taken for ${IDLE_BEFORE_REVIVE_MS / 1000} s; restarting the queue consumer.`);
    const stale = a.bull;
    a.bull = this.consumer(a);
    void withDeadline(stale.close(true), 5000, () => new Error('timed out')).catch(() => undefined);
  }

  private async detach(runId: string, why: string, force: boolean): Promise<void> {
    const a = this.attached.get(runId);
    if (!a) return;
    this.attached.delete(runId);
    // A job in hand still waiting for its weights fails at once (its shard is computed elsewhere).
    await a.feed.close();
    // Graceful: the jobs in hand are finished and completed (bounded: Redis may be away); then, or when forced,
    // whatever is still active is abandoned and goes to another worker once its lock expires.
    const closed = await withDeadline(a.bull.close(force), force ? 5000 : 60_000, () => new Error('timed out')).then(() => true, () => false);
    if (!closed) await withDeadline(a.bull.close(true), 5000, () => new Error('timed out')).catch(() => undefined);
    await removePresence(this.redis, a.keys, this.id).catch(() => undefined);
    await a.pool.close().catch(() => undefined);
    this.options.log(`Worker ${this.id}: left run ${runId} (${why}) after ${a.jobs} job${a.jobs === 1 ? '' : 's'}.`);
    const sweep = this.sweepAfter(a);
    this.sweeps.add(sweep);
    void sweep.finally(() => this.sweeps.delete(sweep));
  }

  /**
   * Closing a BullMQ worker, and a job abandoned by a forced close that still ends later, make BullMQ's scripts
   * re-create a bookkeeping key (`meta`, no TTL) of a run whose keys may already be deleted. Once such jobs are
   * over, remove what they left if the run is indeed over (its announcement gone or closing); a live run's
   * keys are its coordinator's.
   */
  private async sweepAfter(a: Attached): Promise<void> {
    if (a.inFlight.size > 0) {
      await withDeadline(Promise.allSettled([...a.inFlight]), 120_000, () => new Error('timed out')).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    try {
      const text = await this.redis.get(a.keys.announce);
      if (text === null || /"state":"closing"/.test(text)) await deleteRunKeys(this.redis, a.keys);
    } catch {
      // Redis away: its sweep by the next coordinator or worker will do.
    }
  }
}
