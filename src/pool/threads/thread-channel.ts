/**
 * The hand-off between the coordinator's thread and one worker thread of a ThreadPool, in shared memory: the
 * coordinator writes a task (a shard's image indices, or a range of test images) into the channel and flips
 * its state word; the worker thread, which serves the channel in a loop (workers/thread-worker.ts), sees the
 * flip, computes, writes the result into the channel and flips the state back.
 *
 * Why not a message per task (piscina's run(), which starts the threads and still carries the serve loop as one
 * long task): a message wakes a sleeping thread through the kernel and answers through the receiver's event
 * loop, and on our 2-core machines each of those two wake-ups took about 0.2 ms, a third of a batch-10 step.
 * Here both sides watch the state word for a moment first (`spinMs`), so a task posted right after the previous
 * one (the next step's shard) or a result that comes while the coordinator is already waiting is seen within
 * microseconds; after that they sleep on it (Atomics.wait / Atomics.waitAsync) and cost nothing. Spinning only
 * pays while every thread has a core of its own: the pool turns it off otherwise.
 */

/** Values of the state word. The coordinator writes Task, Idle (once it has read a result) and Stop; the thread Done and Failed. */
const ChannelState = { Idle: 0, Task: 1, Done: 2, Failed: 3, Stop: 4 } as const;
const ChannelTaskKind = { Gradient: 1, Evaluate: 2 } as const;

// Control words (Int32).
const STATE = 0;
const KIND = 1;
const STEP = 2;
const VERSION = 3;
const COUNT = 4; // gradient: number of indices; evaluate: start
const END = 5; // evaluate: end
const MESSAGE_BYTES = 6;
const CONTROL_WORDS = 8;
const MESSAGE_CAPACITY = 2048;

/** The shared memory of one channel; passed to the thread once, in its serve task. */
export interface ChannelMemory {
  readonly control: SharedArrayBuffer;
  /** Image indices of a gradient task (up to the training set's size). */
  readonly indices: SharedArrayBuffer;
  /** A gradient result: parameterCount + 2 float32s. */
  readonly gradient: SharedArrayBuffer;
  /** An evaluation result: the loss sum (float64), then one int32 prediction per test image. */
  readonly evaluation: SharedArrayBuffer;
  /** The message of a failed task (UTF-8). */
  readonly message: SharedArrayBuffer;
}

export function allocateChannelMemory(parameterCount: number, trainCount: number, testCount: number): ChannelMemory {
  return {
    control: new SharedArrayBuffer(CONTROL_WORDS * 4),
    indices: new SharedArrayBuffer(Math.max(1, trainCount) * 4),
    gradient: new SharedArrayBuffer((parameterCount + 2) * 4),
    evaluation: new SharedArrayBuffer(8 + Math.max(1, testCount) * 4),
    message: new SharedArrayBuffer(MESSAGE_CAPACITY),
  };
}

/** Busy-waits, at most `ms`, until `ready(state word)`; returns whether it became ready. */
function spinUntil(control: Int32Array, ms: number, ready: (state: number) => boolean): boolean {
  if (ready(Atomics.load(control, STATE))) return true;
  if (ms <= 0) return false;
  const until = performance.now() + ms;
  for (let i = 1; ; i++) {
    if (ready(Atomics.load(control, STATE))) return true;
    if ((i & 63) === 0 && performance.now() > until) return false;
  }
}

const isNotTask = (state: number) => state !== ChannelState.Task;
const isTaskOrStop = (state: number) => state === ChannelState.Task || state === ChannelState.Stop;

/** How the coordinator waits for a task's result. */
export interface ChannelWait {
  /** Rejects once the thread has stopped serving the channel. */
  readonly gone: Promise<never>;
  /** Whether this thread has nothing better to do than watch the channel (else it sleeps on it at once). */
  mayWatch(): boolean;
}

/** The coordinator's end of a channel. One task at a time. */
export class ChannelClient {
  private readonly control: Int32Array;
  private readonly indices: Int32Array;
  private readonly gradientView: Float32Array;
  private readonly lossSum: Float64Array;
  private readonly predictions: Int32Array;
  private readonly message: Uint8Array;

  constructor(
    readonly memory: ChannelMemory,
    /** How long result() watches the state word before it sleeps on it. */
    private readonly spinMs: number,
  ) {
    this.control = new Int32Array(memory.control);
    this.indices = new Int32Array(memory.indices);
    this.gradientView = new Float32Array(memory.gradient);
    this.lossSum = new Float64Array(memory.evaluation, 0, 1);
    this.predictions = new Int32Array(memory.evaluation, 8);
    this.message = new Uint8Array(memory.message);
  }

  postGradient(step: number, version: number, indices: Int32Array): void {
    if (indices.length > this.indices.length) {
      throw new RangeError(`A shard of ${indices.length} images does not fit a channel made for ${this.indices.length}.`);
    }
    this.indices.set(indices);
    this.post(ChannelTaskKind.Gradient, step, version, indices.length, 0);
  }

  postEvaluate(version: number, start: number, end: number, tta: boolean): void {
    if (end - start > this.predictions.length) throw new RangeError(`${end - start} test images do not fit a channel made for ${this.predictions.length}.`);
    // An evaluation has no step: its slot says whether to use test-time augmentation.
    this.post(ChannelTaskKind.Evaluate, tta ? 1 : 0, version, start, end);
  }

  /** Copies a gradient task's result into `out`; throws the thread's error when the task failed. */
  async gradientInto(out: Float32Array, wait: ChannelWait): Promise<void> {
    await this.finished(wait);
    out.set(this.gradientView);
  }

  /** A finished evaluation task's loss sum and predictions (copied out of the channel). */
  async evaluation(start: number, end: number, wait: ChannelWait): Promise<{ start: number; lossSum: number; predictions: Int32Array }> {
    await this.finished(wait);
    return { start, lossSum: this.lossSum[0], predictions: this.predictions.slice(0, end - start) };
  }

  /** True while a task is posted and its result not yet taken. */
  get busy(): boolean {
    return Atomics.load(this.control, STATE) === ChannelState.Task;
  }

  /** Tells the thread to leave its serve loop (after the task in hand, if any). */
  stop(): void {
    Atomics.store(this.control, STATE, ChannelState.Stop);
    Atomics.notify(this.control, STATE);
  }

  private post(kind: number, step: number, version: number, count: number, end: number): void {
    const c = this.control;
    const state = Atomics.load(c, STATE);
    if (state === ChannelState.Task || state === ChannelState.Stop) throw new Error(`ThreadChannel: a task posted while the channel is in state ${state}`);
    c[KIND] = kind;
    c[STEP] = step;
    c[VERSION] = version;
    c[COUNT] = count;
    c[END] = end;
    Atomics.store(c, STATE, ChannelState.Task);
    Atomics.notify(c, STATE);
  }

  /**
   * Waits for the task in hand: watches the state word for spinMs (when `wait.mayWatch()`), then sleeps on it.
   * `wait.gone` rejects when the thread is gone (its serve task ended), so a dead thread fails the task instead
   * of hanging it.
   */
  private async finished(wait: ChannelWait): Promise<void> {
    const c = this.control;
    // First let this event-loop turn finish: the coordinator's thread may have its own share to compute (a
    // ThreadPool posts the threads' tasks first), and watching the channel meanwhile would only delay it.
    await new Promise((resolve) => setImmediate(resolve));
    if (!spinUntil(c, wait.mayWatch() ? this.spinMs : 0, isNotTask)) {
      while (Atomics.load(c, STATE) === ChannelState.Task) {
        const sleep = Atomics.waitAsync(c, STATE, ChannelState.Task);
        if (sleep.async) await Promise.race([sleep.value, wait.gone]);
      }
    }
    const state = Atomics.load(c, STATE);
    Atomics.store(c, STATE, ChannelState.Idle);
    if (state === ChannelState.Failed) {
      throw new Error(new TextDecoder().decode(this.message.slice(0, c[MESSAGE_BYTES])));
    }
    if (state !== ChannelState.Done) throw new Error(`ThreadChannel: the thread left the channel in state ${state}`);
  }
}

/** What a serving thread does with tasks. */
export interface ChannelWork {
  gradient(step: number, version: number, indices: Int32Array, out: Float32Array): void;
  evaluate(version: number, start: number, end: number, tta: boolean): { lossSum: number; predictions: Int32Array };
}

/**
 * The worker thread's end: serves tasks until told to stop. Blocks the thread (it has nothing else to do):
 * after each task it watches for the next one for spinMs, then sleeps until one comes.
 */
export function serveChannel(memory: ChannelMemory, spinMs: number, work: ChannelWork): void {
  const c = new Int32Array(memory.control);
  const indices = new Int32Array(memory.indices);
  const gradient = new Float32Array(memory.gradient);
  const lossSum = new Float64Array(memory.evaluation, 0, 1);
  const predictions = new Int32Array(memory.evaluation, 8);
  const message = new Uint8Array(memory.message);
  for (;;) {
    if (!spinUntil(c, spinMs, isTaskOrStop)) {
      for (let state = Atomics.load(c, STATE); !isTaskOrStop(state); state = Atomics.load(c, STATE)) Atomics.wait(c, STATE, state);
    }
    if (Atomics.load(c, STATE) === ChannelState.Stop) return;
    let outcome: number = ChannelState.Done;
    try {
      if (c[KIND] === ChannelTaskKind.Gradient) {
        work.gradient(c[STEP], c[VERSION], indices.subarray(0, c[COUNT]), gradient);
      } else {
        const result = work.evaluate(c[VERSION], c[COUNT], c[END], c[STEP] === 1);
        lossSum[0] = result.lossSum;
        predictions.set(result.predictions);
      }
    } catch (error) {
      const text = new TextEncoder().encode(error instanceof Error ? error.message : String(error)).subarray(0, message.length);
      message.set(text);
      c[MESSAGE_BYTES] = text.length;
      outcome = ChannelState.Failed;
    }
    // Only if the coordinator did not ask to stop meanwhile (it waits for nothing then).
    Atomics.compareExchange(c, STATE, ChannelState.Task, outcome);
    Atomics.notify(c, STATE);
  }
}
