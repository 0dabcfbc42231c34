/**
 * The vocabulary of the coordinator's rounds (a step's shards, or an evaluation's test ranges): one task per
 * shard or range, each sent as BullMQ jobs, one job per attempt, until a result of it is accepted.
 */
import { type JobName, jobId } from './keys.ts';
import { type JobData, type ResultEnvelope, taskDigest } from './payload-codec.ts';

/** One task of a round. */
export interface RoundTask<T> {
  readonly data: JobData;
  readonly digest: string;
  /** "step 12 shard 1" / "test images 500–999". */
  readonly label: string;
  /** Turns an accepted envelope into the task's result; throws RejectedResult when its payload is unusable. */
  readonly decode: (envelope: ResultEnvelope, worker: string) => T;
  attempt: number;
  /** The job id of the current attempt. */
  jobId: string;
  /** Whether the current attempt went out as a job. */
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

/** A round's tasks and what they are (the kind a job id must name to be one of them). */
export interface OpenRound {
  readonly kind: JobData['kind'];
  readonly tasks: RoundTask<unknown>[];
}

export function newRoundTask<T>(data: JobData, label: string, decode: RoundTask<T>['decode']): RoundTask<T> {
  const task: RoundTask<T> = { data, digest: taskDigest(data), label, decode, attempt: 1, jobId: '', submitted: false, earlier: [] };
  task.jobId = jobId(jobName(task));
  return task;
}

/** Starts a new attempt of a task (after a rejected, failed or lost one): a new job id, to be submitted. */
export function retryTask(task: RoundTask<unknown>): void {
  if (task.submitted) task.earlier.push(task.jobId);
  task.attempt += 1;
  task.jobId = jobId(jobName(task));
  task.submitted = false;
  task.requeued = false;
}

function jobName(task: RoundTask<unknown>): JobName {
  return { kind: task.data.kind, round: task.data.round, index: task.data.index, attempt: task.attempt };
}

/** Why a result was not used; counted per reason (RedisPool.rejectedResults()). */
export type RejectReason =
  | 'unsigned' | 'bad-signature' | 'malformed' | 'wrong-length' | 'non-finite' | 'late' | 'duplicate' | 'wrong-task';

/** A result that must not be used, and why. */
export class RejectedResult extends Error {
  constructor(readonly reason: RejectReason, message: string) {
    super(message);
  }
}
