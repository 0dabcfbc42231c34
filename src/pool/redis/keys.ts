/**
 * Every Redis key this project writes, in one place. All keys of one run share the prefix
 * `<namespace>:run:<runId>:` (BullMQ's queue keys included: the run prefix is BullMQ's `prefix` option), so two
 * runs on one Redis never mix and a run is removed by deleting that prefix. The only key outside a run is the
 * namespace's set of run ids, `<namespace>:runs`, which workers read to find the runs to serve.
 */
import { randomBytes } from 'node:crypto';
import { InvalidOptionError } from '../../errors/index.ts';

/** The namespace when neither --namespace nor TRAINER_NAMESPACE says otherwise. */
export const DEFAULT_NAMESPACE = 'cifar-dp';
/** The BullMQ queue (one per run) that carries gradient and evaluation jobs. */
export const QUEUE_NAME = 'tasks';

const NAMESPACE_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const RUN_ID_PATTERN = /^[a-z0-9-]{1,64}$/;

/** The namespace to use: an explicit value, else $TRAINER_NAMESPACE, else 'cifar-dp'. */
export function resolveNamespace(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  const chosen = explicit || env.TRAINER_NAMESPACE || DEFAULT_NAMESPACE;
  if (!NAMESPACE_PATTERN.test(chosen)) {
    throw new InvalidOptionError(`The Redis namespace must be 1–64 letters, digits, '.', '_' or '-'; got '${chosen}'.`);
  }
  return chosen;
}

/** A fresh run id: UTC time to the second (readable in `redis-cli keys`) and 6 random hex digits. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15).toLowerCase();
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

/** The set of active run ids of a namespace. */
export function runsKey(namespace: string): string {
  return `${namespace}:runs`;
}

/** Keys of one run. */
export class RunKeys {
  readonly namespace: string;
  readonly runId: string;
  /** `<namespace>:run:<runId>`: BullMQ's prefix for the run's queue, and the start of every key of the run. */
  readonly prefix: string;

  constructor(namespace: string, runId: string) {
    if (!NAMESPACE_PATTERN.test(namespace)) throw new InvalidOptionError(`Bad Redis namespace '${namespace}'.`);
    if (!RUN_ID_PATTERN.test(runId)) throw new InvalidOptionError(`Bad run id '${runId}'.`);
    this.namespace = namespace;
    this.runId = runId;
    this.prefix = `${namespace}:run:${runId}`;
  }

  /** SCAN pattern matching every key of the run. */
  get pattern(): string {
    return `${this.prefix}:*`;
  }

  /** The run's announcement (JSON, with a TTL the coordinator keeps renewing). */
  get announce(): string {
    return `${this.prefix}:announce`;
  }

  /** The stream of published weights versions, bytes included: the last few (weights-store.ts, weights-feed.ts). */
  get weightsFeed(): string {
    return `${this.prefix}:weights-feed`;
  }

  /** The stream of take-backs of jobs handed out ahead of their weights (weights-store.ts, weights-feed.ts). */
  get takeBacks(): string {
    return `${this.prefix}:take-backs`;
  }

  /** The list the workers push their signed results to and the coordinator pops them from (result-list.ts). */
  get results(): string {
    return `${this.prefix}:results`;
  }

  /** One worker's presence on this run (JSON, with a TTL the worker renews). */
  worker(workerId: string): string {
    return `${this.prefix}:worker:${encodeURIComponent(workerId)}`;
  }

  /** SCAN pattern of the workers' presence keys. */
  get workersPattern(): string {
    return `${this.prefix}:worker:*`;
  }

  /** BullMQ's event stream of the run's queue. */
  get events(): string {
    return `${this.prefix}:${QUEUE_NAME}:events`;
  }
}

/** The two kinds of job a run sends. */
export type TaskKind = 'gradient' | 'evaluate';

/** What a job id says: which call of the pool (`round`), which task of it, which attempt. */
export interface JobName {
  readonly kind: TaskKind;
  readonly round: number;
  readonly index: number;
  readonly attempt: number;
}

/**
 * Job ids: `g<round>-<index>-<attempt>` for gradients, `e<round>-<index>-<attempt>` for evaluation. Chosen by the
 * coordinator (BullMQ refuses a second job with an id it holds), so a completion names its task by itself.
 */
export function jobId(name: JobName): string {
  return `${name.kind === 'gradient' ? 'g' : 'e'}${name.round}-${name.index}-${name.attempt}`;
}

/** The inverse of jobId, or undefined for an id this project did not make. */
export function parseJobId(id: unknown): JobName | undefined {
  if (typeof id !== 'string') return undefined;
  const match = /^([ge])(\d{1,9})-(\d{1,9})-(\d{1,9})$/.exec(id);
  if (!match) return undefined;
  return { kind: match[1] === 'g' ? 'gradient' : 'evaluate', round: Number(match[2]), index: Number(match[3]), attempt: Number(match[4]) };
}
