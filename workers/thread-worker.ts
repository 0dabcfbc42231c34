/**
 * The thread side of ThreadPool: one piscina worker thread with its own tfjs instance. It reads the training
 * images and the current weights from SharedArrayBuffers (no copies per step), computes what it is asked, and
 * transfers its result back.
 */
import { workerData, threadId } from 'node:worker_threads';
import { move } from 'piscina';
import { ShardComputer } from '../src/compute/shard-computer.ts';
import { modelByName } from '../src/model/model-registry.ts';
import type { ThreadTask, ThreadWorkerData, HelloReply } from '../src/pool/thread-messages.ts';
import type { EvalResult } from '../src/pool/worker-pool.ts';
import { ShardResultError } from '../src/errors/index.ts';

const data = workerData as ThreadWorkerData;
const weights = new Float32Array(data.weights);
const publishedVersion = new Int32Array(data.weightsVersion);
let computer: Promise<ShardComputer> | undefined;
let loadedVersion = -1;

function getComputer(): Promise<ShardComputer> {
  if (!computer) {
    computer = ShardComputer.create(modelByName(data.model), { train: data.train, test: data.test }, data.backend, {
      allowNative: data.allowNative,
      recipe: data.recipe,
    });
  }
  return computer;
}

function useWeights(c: ShardComputer, version: number): void {
  if (version === loadedVersion) return;
  const published = Atomics.load(publishedVersion, 0);
  if (published !== version) {
    throw new ShardResultError(`Thread ${threadId} was asked for weights version ${version} but version ${published} is published.`);
  }
  c.setWeights(weights);
  loadedVersion = version;
}

export default async function run(task: ThreadTask): Promise<HelloReply | Float32Array | EvalResult> {
  const c = await getComputer();
  switch (task.kind) {
    case 'hello':
      return { backend: c.backend, threadId };
    case 'gradient': {
      useWeights(c, task.weightsVersion);
      return move(c.gradient(task.indices, task.step)) as unknown as Float32Array;
    }
    case 'evaluate': {
      useWeights(c, task.weightsVersion);
      return c.evaluate(task.start, task.end);
    }
  }
}
