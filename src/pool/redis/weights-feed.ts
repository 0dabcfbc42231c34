/**
 * A worker's view of a run's published weights. It reads the run's weights feed (the stream the coordinator
 * appends every version to, bytes included: weights-store.ts) and its take-backs with one blocking XREAD on a
 * connection of its own, so a job that arrived before its weights (the coordinator hands the next step's jobs
 * out ahead) starts the moment they are published: no polling, and no other read on the step's critical path.
 * Should the feed stay silent while a job waits (a second without an entry), its newest entry is read
 * directly, in case the blocking read missed it. A job the coordinator takes back (an entry in the take-backs
 * stream) fails at once while it waits, and the worker is free for the jobs that are due.
 */
import type { Redis } from 'ioredis';
import type { RunKeys } from './keys.ts';
import { FEED_FIELD, TAKE_BACK_FIELD, WeightsUnavailable, entryField, latestWeights, readWeightsRecord } from './weights-store.ts';

/** How long one blocking read of the feed lasts, and how long a waiting job waits for an entry before it reads the feed's newest one itself. */
const BLOCK_MS = 1000;

export class WeightsFeed {
  private latest: { readonly version: number; readonly values: Float32Array } | undefined;
  /** Bumped by every feed entry: a waiter that saw no weights re-checks instead of sleeping past an entry. */
  private generation = 0;
  /** Where the next read of each stream starts. */
  private lastFeedId = '0-0';
  private lastTakeBackId = '0-0';
  /** Jobs the coordinator took back, or this worker dropped, with why. */
  private readonly takenBack = new Map<string, string>();
  private wake: (() => void)[] = [];
  private closed = false;
  private readonly reading: Promise<void>;

  /**
   * `feedClient` is blocked by the reads: give the feed a connection of its own, which close() disconnects.
   * `redis` is shared, for reading the newest entry after a silence. `onError` hears of entries that do not
   * verify (once each).
   */
  constructor(
    private readonly feedClient: Redis,
    private readonly redis: Redis,
    private readonly keys: RunKeys,
    private readonly parameterCount: number,
    private readonly secret: string | undefined,
    private readonly onError: (message: string) => void,
  ) {
    this.reading = this.readLoop();
  }

  /**
   * The weights of `version` for job `jobId`, as soon as they are published. Throws WeightsUnavailable when a
   * newer version is out (the run has moved on), when the job is taken back, when the newest entry read after
   * a silence does not verify, or once the feed is closed.
   */
  async waitFor(version: number, jobId: string): Promise<Float32Array> {
    for (;;) {
      if (this.closed) throw new WeightsUnavailable(`gave up waiting for weights version ${version}: the worker left the run`);
      const dropped = this.takenBack.get(jobId);
      if (dropped !== undefined) throw new WeightsUnavailable(`${dropped} job ${jobId} while it waited for weights version ${version}`);
      const latest = this.latest;
      if (latest?.version === version) return latest.values;
      if (latest && latest.version > version) {
        throw new WeightsUnavailable(`weights version ${version} is superseded by version ${latest.version}: the coordinator has moved on`);
      }
      const seen = this.generation;
      await this.nextEntry();
      if (this.generation === seen && !this.closed) {
        // A second without an entry: the blocking read may have missed one (Redis restarted, say).
        const newest = await latestWeights(this.redis, this.keys, this.parameterCount, this.secret);
        if (newest && (!this.latest || newest.version > this.latest.version)) this.latest = newest;
      }
    }
  }

  /**
   * Gives up the jobs whose lock this worker lost (BullMQ could not renew it: Redis lost the job, say in a
   * restart) if they wait for weights: nobody would take their result, and the worker is needed for the jobs
   * that are due. A job already computing is not affected.
   */
  drop(jobIds: readonly string[]): void {
    for (const id of jobIds) if (!this.takenBack.has(id)) this.takenBack.set(id, 'this worker lost the lock of');
    for (const wake of this.wake.splice(0)) wake();
  }

  /** Stops reading; waiting jobs fail at once (their weights will not come to this worker). */
  async close(): Promise<void> {
    this.closed = true;
    this.feedClient.disconnect();
    for (const wake of this.wake.splice(0)) wake();
    await this.reading;
  }

  /** Resolves at the next feed entry, at close, or after BLOCK_MS. */
  private nextEntry(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, BLOCK_MS);
      const wake = this.wake;
      function done() {
        clearTimeout(timer);
        const i = wake.indexOf(done);
        if (i >= 0) wake.splice(i, 1);
        resolve();
      }
      wake.push(done);
    });
  }

  private async readLoop(): Promise<void> {
    while (!this.closed) {
      let reply: [Buffer, [Buffer, Buffer[]][]][] | null;
      try {
        reply = (await this.feedClient.xreadBuffer(
          'BLOCK', BLOCK_MS, 'STREAMS', this.keys.weightsFeed, this.keys.takeBacks, this.lastFeedId, this.lastTakeBackId,
        )) as typeof reply;
      } catch {
        // Redis away, or closed: waiting jobs read the newest entry themselves meanwhile; ioredis reconnects.
        if (!this.closed) await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      let count = 0;
      for (const [stream, entries] of reply ?? []) {
        const takeBacks = stream.toString() === this.keys.takeBacks;
        for (const [id, fields] of entries) {
          if (takeBacks) this.takeBack(id.toString(), fields);
          else this.take(id.toString(), fields);
          count++;
        }
      }
      if (count > 0) {
        this.generation += 1;
        for (const wake of this.wake.splice(0)) wake();
      }
    }
  }

  private takeBack(id: string, fields: Buffer[]): void {
    this.lastTakeBackId = id;
    const jobs = entryField(fields, TAKE_BACK_FIELD);
    if (jobs) for (const job of jobs.toString().split(',')) this.takenBack.set(job, 'the coordinator took back');
  }

  private take(id: string, fields: Buffer[]): void {
    this.lastFeedId = id;
    const bytes = entryField(fields, FEED_FIELD);
    if (!bytes) return;
    try {
      const record = readWeightsRecord(bytes, this.keys, undefined, this.parameterCount, this.secret);
      if (!this.latest || record.version >= this.latest.version) this.latest = record;
    } catch (error) {
      // Whatever is wrong with an entry (anyone with access to Redis can write one), it must not stop the read
      // loop, which every job of the run waits on.
      this.onError(`the weights feed holds an entry this worker cannot use: ${(error as Error).message}`);
    }
  }
}
