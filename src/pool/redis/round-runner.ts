/**
 * The coordinator's rounds over Redis: a step's shards (or an evaluation's test ranges) go out as BullMQ jobs,
 * and a round ends when every task has an accepted result. Results come from the run's result list, BullMQ's
 * 'failed' and 'stalled' events from its event stream; each result is checked before it is used (run, task,
 * weights version, signature, then its payload), and a task whose result is rejected, or whose job failed or
 * vanished, goes out again as a new attempt. A round says on whom it waits, and gives up after the shard
 * timeout with a WorkerTimeoutError.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { WorkerTimeoutError } from '../../errors/index.ts';
import { crashPoint } from '../../testing/crash-point.ts';
import { withDeadline } from './connection.ts';
import type { ConnectionWatch } from './connection-watch.ts';
import type { HandOutAhead } from './hand-out-ahead.ts';
import { type JobName, type RunKeys, type TaskKind, parseJobId } from './keys.ts';
import { CodecError, type ResultEnvelope, decodeResult, subjectPosition } from './payload-codec.ts';
import { decodeResultEntry, popResult } from './result-list.ts';
import { verifyResult } from './result-signing.ts';
import { type OpenRound, type RejectReason, RejectedResult, type RoundTask, retryTask } from './round-task.ts';
import type { RunLife } from './run-life.ts';
import { type WorkerPresence, describePresences, readPresences } from './worker-presence.ts';

interface StreamEvent {
  readonly id: string;
  readonly fields: Record<string, string>;
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

const TICK_MS = 1000;

export interface RoundRunnerOptions {
  readonly queue: Queue;
  /** The coordinator's main client (presences). */
  readonly redis: Redis;
  /** Blocked by reads of BullMQ's event stream. */
  readonly events: Redis;
  /** Blocked by pops of the result list. */
  readonly results: Redis;
  readonly keys: RunKeys;
  /** Redis as shown in messages (password hidden). */
  readonly display: string;
  readonly secret: string | undefined;
  /** A result envelope larger than this is refused unread. */
  readonly maxResultBytes: number;
  readonly shardTimeoutSeconds: number;
  readonly waitLogSeconds?: number;
  readonly life: RunLife;
  readonly watch: ConnectionWatch;
  readonly ahead: HandOutAhead;
  readonly log: (line: string) => void;
}

export class RoundRunner {
  /** Rounds whose jobs are out, by number: the running one, and the next step's when it was handed out ahead. */
  private readonly rounds = new Map<number, OpenRound>();
  private lastRound = 0;
  private lastEventId = '0-0';
  private eventRead: PendingRead<StreamEvent[]> | undefined;
  private resultPop: PendingRead<Buffer | null> | undefined;
  private readonly rejected = new Map<RejectReason, number>();
  readonly traffic = { resultBytes: 0, jobs: 0 };

  private readonly queue: Queue;
  private readonly redis: Redis;
  private readonly events: Redis;
  private readonly results: Redis;
  private readonly keys: RunKeys;
  private readonly display: string;
  private readonly secret: string | undefined;
  private readonly maxResultBytes: number;
  private readonly life: RunLife;
  private readonly watch: ConnectionWatch;
  private readonly ahead: HandOutAhead;
  private readonly log: (line: string) => void;

  constructor(private readonly options: RoundRunnerOptions) {
    ({
      queue: this.queue, redis: this.redis, events: this.events, results: this.results, keys: this.keys, display: this.display,
      secret: this.secret, maxResultBytes: this.maxResultBytes, life: this.life, watch: this.watch, ahead: this.ahead, log: this.log,
    } = options);
  }

  /** A new round number (job ids carry it: a result names its round). */
  nextRound(): number {
    return ++this.lastRound;
  }

  /** Registers a round whose jobs go out before it runs (handed out ahead): its results are taken meanwhile. */
  open(round: number, kind: TaskKind, tasks: RoundTask<unknown>[]): void {
    this.rounds.set(round, { kind, tasks });
  }

  /** Forgets a round that is not coming (handed out ahead, then dropped): its results will be 'late'. */
  forget(round: number): void {
    this.rounds.delete(round);
  }

  /** Results not used so far, by reason. */
  rejectedResults(): Readonly<Record<string, number>> {
    return Object.fromEntries(this.rejected);
  }

  /** Sends every task as a job and waits until each has an accepted result; results in task order. */
  async run<T>(kind: TaskKind, round: number, tasks: RoundTask<T>[]): Promise<T[]> {
    const started = Date.now();
    const timeoutMs = this.options.shardTimeoutSeconds * 1000;
    const waitLogMs = (this.options.waitLogSeconds ?? Math.min(10, Math.max(1, this.options.shardTimeoutSeconds / 4))) * 1000;
    let nextWaitLog = started + waitLogMs;
    let recoveriesSeen = this.life.recoveries;
    if (!this.rounds.has(round)) this.rounds.set(round, { kind, tasks });
    // This round's tasks, then the next step's handed out ahead (queued behind them).
    const outstanding = (): RoundTask<unknown>[] => [...tasks, ...this.ahead.queuedBehind()].filter((t) => t.result === undefined);
    try {
      await this.submit(outstanding().filter((t) => !t.submitted));
      crashPoint(kind === 'evaluate' ? 'redis:evaluation-handed-out' : 'redis:step-handed-out');
      const open = () => tasks.some((t) => t.result === undefined);
      while (open()) {
        this.apply(await this.nextArrivals(TICK_MS));
        if (!open()) break;
        const now = Date.now();
        this.watch.check(now);
        if (this.life.recoveries !== recoveriesSeen) {
          recoveriesSeen = this.life.recoveries;
          const lost = outstanding();
          for (const task of lost) retryTask(task);
          this.log(`Resubmitted ${lost.map((t) => t.label).join(', ')} after the run's keys were restored.`);
          this.ahead.withdrawEarlierAttempts(this.rounds.values());
        }
        await this.ahead.flush();
        if (tasks.some((t) => t.result === undefined && (!t.submitted || t.requeued))) await this.ahead.holdBack();
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
                `still waiting for ${status}. Start workers with \`npm run worker -- --redis ${this.display}\` ` +
                '(same data set and backend as this coordinator), or raise --shard-timeout. The checkpoint holds the last completed step; continue with --resume.',
            );
          }
          this.log(`Waiting ${Math.floor((now - started) / 1000)} s for ${status}.`);
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
    if (tasks.length === 0 || !this.watch.connected) return;
    try {
      await withDeadline(
        this.queue.addBulk(tasks.map((t) => ({ name: t.data.kind, data: t.data, opts: { jobId: t.jobId } }))),
        2000,
        () => new Error('timed out'),
      );
      for (const t of tasks) t.submitted = true;
      this.traffic.jobs += tasks.length;
    } catch {
      // Redis away: the ConnectionWatch decides how long that may last; the next tick submits them again.
    }
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
      this.log(`Job ${id} (${task.label}) stalled: its worker stopped renewing the job's lock (killed or hung). BullMQ put it back in the queue for another worker.`);
    } else if (task.jobId === id) {
      retryTask(task);
      this.log(`${capitalize(task.label)} failed on a worker (job ${id}): ${event.fields.failedReason ?? 'no reason given'}. Computing it again (attempt ${task.attempt}).`);
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
      if (envelopeBytes.length > this.maxResultBytes) {
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
      this.life.markServed();
    } catch (error) {
      if (!(error instanceof RejectedResult)) throw error;
      // A bad result of an earlier attempt (one taken back, say) changes nothing: the current attempt is already
      // out, and another one would only be computed twice.
      const current = task.jobId === id;
      if (current) retryTask(task);
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
    this.log(line);
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
        this.log(`Job ${task.jobId} (${task.label}) is gone from the queue without a result; submitting it again.`);
        retryTask(task);
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
    const who = presences ? describePresences(presences) : `Redis at ${this.display} does not answer`;
    return `${parts.join(', ')}; ${who}`;
  }
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
