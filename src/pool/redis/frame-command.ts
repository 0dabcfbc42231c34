/**
 * Large writes to Redis without a fresh buffer per command. ioredis turns a command with a Buffer argument into
 * one new Buffer of the whole command (its MixedBuffers) before writing it; for the 325 KB of a weights version
 * or a gradient that is a fresh allocation per step per process. On our VMs a fresh buffer of that size costs
 * its page faults on first touch (about half a millisecond), and the external memory it adds brings V8's
 * mark-compact collections around every ten steps or so. A FrameCommand writes its command, in Redis's wire format
 * (RESP), into a buffer of a FramePool instead, which it holds until the command is settled (replied to, or
 * failed: ioredis may write a command again after a reconnection, from the same buffer), then gives back.
 *
 * An argument may be given in parts (a list of byte arrays): they are written one after the other as one
 * argument, so a header and a body need not be joined first.
 */
import { Command, type Redis } from 'ioredis';

export type FrameArgument = string | Uint8Array | readonly Uint8Array[];

const CRLF = '\r\n';

/** Reusable frame buffers, grown as needed: one per command in flight (one or two, in practice). */
export class FramePool {
  private readonly free: Buffer[] = [];

  take(bytes: number): Buffer {
    const i = this.free.findIndex((buffer) => buffer.length >= bytes);
    if (i >= 0) return this.free.splice(i, 1)[0];
    // Room for a little growth (a longer worker name, say) without a new buffer.
    return Buffer.allocUnsafeSlow(bytes + 4096);
  }

  give(buffer: Buffer): void {
    this.free.push(buffer);
  }
}

/** The bytes of one argument: a string's UTF-8 length, or the sum of its parts. */
function argumentBytes(arg: FrameArgument): number {
  if (typeof arg === 'string') return Buffer.byteLength(arg);
  if (arg instanceof Uint8Array) return arg.byteLength;
  return arg.reduce((sum, part) => sum + part.byteLength, 0);
}

/** `*<n>\r\n` then `$<len>\r\n<bytes>\r\n` per word: the command as Redis reads it. */
export function frameLength(words: readonly FrameArgument[]): number {
  let total = Buffer.byteLength(`*${words.length}${CRLF}`);
  for (const word of words) {
    const n = argumentBytes(word);
    total += Buffer.byteLength(`$${n}${CRLF}`) + n + 2;
  }
  return total;
}

/** Writes the command into `into` (at least frameLength(words) long); returns the bytes written. */
export function writeFrame(words: readonly FrameArgument[], into: Buffer): number {
  let at = into.write(`*${words.length}${CRLF}`, 0, 'latin1');
  for (const word of words) {
    at += into.write(`$${argumentBytes(word)}${CRLF}`, at, 'latin1');
    if (typeof word === 'string') at += into.write(word, at, 'utf8');
    else if (word instanceof Uint8Array) {
      into.set(word, at);
      at += word.byteLength;
    } else {
      for (const part of word) {
        into.set(part, at);
        at += part.byteLength;
      }
    }
    at += into.write(CRLF, at, 'latin1');
  }
  return at;
}

class FrameCommand extends Command {
  private frame: Buffer | undefined;

  constructor(
    name: string,
    private readonly words: readonly FrameArgument[],
    private readonly pool: FramePool,
  ) {
    // ioredis sees the key (the first argument) for what it does with keys; the frame is what goes out.
    super(name, typeof words[0] === 'string' ? [words[0]] : []);
    this.promise.then(this.release, this.release);
  }

  override toWritable(): Buffer {
    const all = [this.name, ...this.words];
    const bytes = frameLength(all);
    if (!this.frame || this.frame.length < bytes) {
      if (this.frame) this.pool.give(this.frame);
      this.frame = this.pool.take(bytes);
    }
    return this.frame.subarray(0, writeFrame(all, this.frame));
  }

  private readonly release = () => {
    if (this.frame) this.pool.give(this.frame);
    this.frame = undefined;
  };
}

/**
 * Sends `name words...` on `redis` through a frame of `pool`; resolves with Redis's reply as ioredis gives it
 * (strings for bulk replies, numbers for integers).
 */
export function sendFrame(redis: Redis, pool: FramePool, name: string, words: readonly FrameArgument[]): Promise<unknown> {
  const command = new FrameCommand(name, words, pool);
  void redis.sendCommand(command);
  return command.promise;
}
