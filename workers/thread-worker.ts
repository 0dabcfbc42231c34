/**
 * The thread side of ThreadPool: one piscina worker thread with its own tfjs instance. It reads the training
 * images and the current weights from SharedArrayBuffers (no copies per step). After the pool's 'hello', its
 * one task is to serve its channel (src/pool/threads/thread-channel.ts): gradients and evaluations, written straight
 * into the channel's shared memory, until the pool closes.
 */
import { workerData, threadId } from 'node:worker_threads';
import { ShardComputer } from '../src/compute/shard-computer.ts';
import { modelByName } from '../src/model/model-registry.ts';
import type { ThreadTask, ThreadWorkerData, HelloReply } from '../src/pool/threads/thread-messages.ts';
import { PublishedWeights } from '../src/pool/threads/published-weights.ts';
import { serveChannel } from '../src/pool/threads/thread-channel.ts';

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

export default async function run(task: ThreadTask): Promise<HelloReply | null> {
  const c = await getComputer();
  switch (task.kind) {
    case 'hello':
      return { backend: c.backend, threadId, numerics: c.numerics };
    case 'serve':
      serveChannel(task.memory, task.spinMs, {
        gradient(step, version, indices, out) {
          weights.loadInto(c, version);
          c.gradient(indices, step, out);
        },
        evaluate(version, start, end, tta) {
          weights.loadInto(c, version);
          return c.evaluate(start, end, tta);
        },
      });
      return null;
  }
}
