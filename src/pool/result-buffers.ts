import { shardResultLength } from './shard-result.ts';

/**
 * The memory shard results are written into, reused from step to step. A pool takes one buffer per shard
 * result and writes the result into it (a ThreadPool computes into it on the calling thread, or copies a worker
 * thread's result out of its channel; a RedisPool decodes a worker's result into it), and the pool's caller
 * gives it back with WorkerPool.recycle() once it has read it. So a step allocates no 325 KB result arrays: at
 * batch 10 those allocations alone cost the coordinator's thread about a third of a millisecond per step in
 * garbage collection.
 *
 * A buffer is never handed out twice before it is given back, so callers that overlap (a remote worker with
 * several jobs at once) each write into memory of their own. Results that are never given back are simply
 * left to the garbage collector: recycling is an optimisation, not an obligation.
 */
export class ResultBuffers {
  private readonly free: Float32Array[] = [];
  /** Every buffer this pool handed out, so that give() takes back only its own. */
  private readonly mine = new WeakSet<Float32Array>();
  private readonly length: number;

  constructor(parameterCount: number) {
    this.length = shardResultLength(parameterCount);
  }

  /** A buffer for one shard result (parameterCount + 2 floats), from the free list or new. */
  take(): Float32Array {
    const buffer = this.free.pop() ?? new Float32Array(this.length);
    this.mine.add(buffer);
    return buffer;
  }

  /** Gives back buffers once read; arrays that did not come from take() (or came back already) are ignored. */
  give(buffers: readonly Float32Array[]): void {
    for (const buffer of buffers) {
      if (!this.mine.has(buffer)) continue;
      this.mine.delete(buffer);
      this.free.push(buffer);
    }
  }
}
