/**
 * One job of a run a remote worker serves: its weights version (waited for on the run's weights feed, since the
 * coordinator hands the next step's jobs out ahead of their weights, and loaded into the worker's threads once
 * per version through the WeightsGate), the compute on a thread, and the signed result pushed onto the run's
 * result list (result-list.ts) before BullMQ completes the job.
 */
import type { Job } from 'bullmq';
import type { Cifar10Dataset } from '../../data/cifar10-dataset.ts';
import type { ThreadPool } from '../threads/thread-pool.ts';
import type { RunKeys } from './keys.ts';
import {
  type JobData, RESULT_FORMAT, decodeIndices, encodeEvalPayload, encodeGradientPayload, encodeResultParts, parseJobData,
  subjectPosition, taskDigest,
} from './payload-codec.ts';
import { encodeResultEntry, pushResult } from './result-list.ts';
import type { RunAnnouncement } from './run-announcement.ts';
import { signResult } from './result-signing.ts';
import type { WeightsFeed } from './weights-feed.ts';
import type { WeightsGate } from './weights-gate.ts';
import { WeightsUnavailable } from './weights-store.ts';
import type { Redis } from 'ioredis';

/** What a job needs of the run it belongs to. */
export interface ServedRun {
  readonly announcement: RunAnnouncement;
  readonly pool: ThreadPool;
  readonly gate: WeightsGate;
  readonly feed: WeightsFeed;
  jobs: number;
}

export interface JobProcessorOptions {
  /** The worker's name, in results and messages. */
  readonly id: string;
  readonly redis: Redis;
  readonly dataset: Cifar10Dataset;
  readonly secret?: string;
  readonly log: (line: string) => void;
  readonly verbose?: boolean;
  /** Sleep this long before each job (TRAINER_TEST_JOB_DELAY_MS: a slow worker on purpose, for tests). */
  readonly jobDelayMs?: number;
}

export class JobProcessor {
  private readonly id: string;
  private readonly redis: Redis;

  constructor(private readonly options: JobProcessorOptions) {
    this.id = options.id;
    this.redis = options.redis;
  }

  /** One BullMQ job: weights for its version, the compute on a thread, the signed result into Redis. */
  async process(keys: RunKeys, a: ServedRun, job: Job): Promise<{ worker: string }> {
    let data: JobData;
    try {
      data = parseJobData(job.data);
    } catch (error) {
      throw new Error(`[worker ${this.id}] job ${job.id} is unreadable: ${(error as Error).message}`);
    }
    if (this.options.jobDelayMs) await new Promise((resolve) => setTimeout(resolve, this.options.jobDelayMs));
    const started = performance.now();
    const { payload, release } = await a.gate.use(
      data.weightsVersion,
      async (version) => {
        let weights: Float32Array;
        try {
          // The next step's jobs come ahead of their weights: this waits until the coordinator publishes them.
          weights = await a.feed.waitFor(version, String(job.id));
        } catch (error) {
          if (error instanceof WeightsUnavailable) throw new Error(`[worker ${this.id}] ${error.message}`);
          throw error;
        }
        await a.pool.publishWeights(version, weights);
      },
      () => this.compute(a, data),
    );
    try {
      const position = subjectPosition(data);
      const subject = { runId: keys.runId, kind: data.kind, ...position, weightsVersion: data.weightsVersion, taskDigest: taskDigest(data) };
      const signature = this.options.secret ? signResult(this.options.secret, subject, payload) : undefined;
      const envelope = encodeResultParts({
        format: RESULT_FORMAT, runId: keys.runId, jobId: String(job.id), worker: this.id, kind: data.kind, ...position,
        weightsVersion: data.weightsVersion, payload, ...(signature ? { signature } : {}),
      });
      // The payload goes into the push's frame as it is: its buffer goes back to the pool once pushed.
      await pushResult(this.redis, keys, encodeResultEntry(String(job.id), this.id, envelope));
    } finally {
      release();
    }
    a.jobs += 1;
    if (this.options.verbose) {
      this.options.log(`Job ${job.id} (${data.kind === 'gradient' ? `step ${data.step} shard ${data.shard}` : `test ${data.start}–${data.end - 1}`}) in ${(performance.now() - started).toFixed(0)} ms.`);
    }
    return { worker: this.id };
  }

  /**
   * The job's payload; `release` is called once it has been pushed (a gradient's payload is a view of the
   * pool's result buffer, which goes back to the pool then).
   */
  private async compute(a: ServedRun, data: JobData): Promise<{ payload: Uint8Array; release: () => void }> {
    const { train, test } = this.options.dataset;
    if (data.kind === 'gradient') {
      const indices = decodeIndices(data.indices);
      const limit = Math.min(train.count, a.announcement.trainCount);
      for (const i of indices) {
        if (i < 0 || i >= limit) throw new Error(`[worker ${this.id}] image index ${i} is outside the run's ${limit} training images`);
      }
      const [values] = await a.pool.computeGradients([{ step: data.step, shard: data.shard, weightsVersion: data.weightsVersion, indices }]);
      return { payload: encodeGradientPayload(values), release: () => a.pool.recycle([values]) };
    }
    if (data.end > Math.min(test.count, a.announcement.testCount)) {
      throw new Error(`[worker ${this.id}] test images ${data.start}–${data.end - 1} are outside the run's ${a.announcement.testCount} test images`);
    }
    const [result] = await a.pool.evaluate([{ weightsVersion: data.weightsVersion, start: data.start, end: data.end, tta: data.tta === true }]);
    return { payload: encodeEvalPayload(result), release: () => undefined };
  }
}
