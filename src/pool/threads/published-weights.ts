import type { ShardComputer } from '../../compute/shard-computer.ts';
import { ShardResultError } from '../../errors/index.ts';

/**
 * One computing thread's view of the weights a ThreadPool publishes (one SharedArrayBuffer of values and one of
 * the version number): loads a version into the thread's ShardComputer once, and refuses a version that is not
 * the published one. Used by every worker thread (workers/thread-worker.ts) and by the coordinator's thread when
 * it computes a share itself.
 */
export class PublishedWeights {
  private loaded = -1;

  constructor(
    private readonly weights: Float32Array,
    private readonly version: Int32Array,
    /** Who reads, for the error message, e.g. "Thread 3". */
    private readonly reader: string,
  ) {}

  loadInto(computer: ShardComputer, version: number): void {
    if (version === this.loaded) return;
    const published = Atomics.load(this.version, 0);
    if (published !== version) {
      throw new ShardResultError(`${this.reader} was asked for weights version ${version} but version ${published} is published.`);
    }
    computer.setWeights(this.weights);
    this.loaded = version;
  }
}
