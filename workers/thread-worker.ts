/**
 * The thread side of ThreadPool: one piscina worker thread with its own tfjs instance. It reads the training
 * images and the current weights from SharedArrayBuffers (no copies per step), computes what it is asked, and
 * writes a gradient into the shared result buffer the task names (an evaluation, small, goes back as the reply).
 */
import { workerData, threadId } from 'node:worker_threads';
import { ShardComputer } from '../src/compute/shard-computer.ts';
import { modelByName } from '../src/model/model-registry.ts';
import type { ThreadTask, ThreadWorkerData, HelloReply } from '../src/pool/thread-messages.ts';
import type { EvalResult } from '../src/pool/worker-pool.ts';
import { PublishedWeights } from '../src/pool/published-weights.ts';

const data = workerData as ThreadWorkerData;
const weights = new PublishedWeights(new Float32Array(data.weights), new Int32Array(data.weightsVersion), `Thread ${threadId}`);
let computer: Promise<ShardComputer> | undefined;

function getComputer(): Promise<ShardComputer> {
  if (!computer) {
    computer = ShardComputer.create(modelByName(data.model), { train: data.train, test: data.test }, data.backend, {
      allowNative: data.allowNative,
      recipe: data.recipe,
    });
  }
  return computer;
}

export default async function run(task: ThreadTask): Promise<HelloReply | EvalResult | null> {
  const c = await getComputer();
  switch (task.kind) {
    case 'hello':
      return { backend: c.backend, threadId };
    case 'gradient': {
      weights.loadInto(c, task.weightsVersion);
      c.gradient(task.indices, task.step, task.out);
      return null;
    }
    case 'evaluate': {
      weights.loadInto(c, task.weightsVersion);
      return c.evaluate(task.start, task.end);
    }
  }
}
