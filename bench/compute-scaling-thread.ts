/**
 * A compute-scaling thread (./compute-scaling.ts): its own ShardComputer on the shared training images, computing
 * gradients of its shard of a batch while the main thread's phase runs, in rounds; with other threads active a
 * round ends when all of them have finished theirs. Then it reports.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ShardComputer } from '../src/compute/shard-computer.ts';
import { modelByName } from '../src/model/model-registry.ts';
import { cutIntoShards } from '../src/train/batch-plan.ts';
import { ScalingControl, type ScalingThreadData } from './compute-scaling-control.ts';

const data = workerData as ScalingThreadData;
const control = new ScalingControl(0, data.control);
const computer = await ShardComputer.create(modelByName(data.model), { train: data.train, test: data.train }, data.backend, { allowNative: false });
computer.setWeights(data.weights);
parentPort!.postMessage('ready');

const count = data.train.count;
// Each thread walks the training images from its own place, so that threads never share a shard.
let next = Math.floor((data.id * count) / 4);
let step = 0;
for (let seen = 0; ;) {
  const order = control.nextPhase(seen);
  if (!order) break;
  seen = order.generation;
  if (data.id >= order.active) continue;
  const size = cutIntoShards(new Int32Array(order.batch), order.active)[data.id].length;
  const indices = new Int32Array(size);
  const out = new Float32Array(computer.parameterCount + 2);
  const started = performance.now();
  let ms = 0;
  let rounds = 0;
  while (control.running(order.generation)) {
    for (let i = 0; i < size; i++) indices[i] = (next + i) % count;
    next = (next + size) % count;
    computer.gradient(indices, step++, out);
    if (order.active > 1 && !control.barrier(rounds + 1, order.active, order.generation, data.spin)) break;
    rounds++;
    ms = performance.now() - started;
  }
  control.report(data.id, { ms, rounds });
}
