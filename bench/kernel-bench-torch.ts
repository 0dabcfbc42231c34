/**
 * PyTorch's convolutions for `npm run bench:kernels`: starts bench/kernel_bench_torch.py once (one thread) and
 * asks it to time one shape and direction at a time, so its points interleave with ours.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { BenchError } from './bench-error.ts';
import type { ConvShape } from './kernel-bench-shapes.ts';

const SCRIPT = fileURLToPath(new URL('./kernel_bench_torch.py', import.meta.url));

export type Direction = 'forward' | 'input-grad' | 'filter-grad';

type Reply = { kind: string; seconds?: number; message?: string; torch?: string };

export class TorchConvReference {
  private readonly waiting: ((reply: Reply) => void)[] = [];

  private constructor(private readonly child: ChildProcessWithoutNullStreams, readonly version: string) {}

  static async start(python: string): Promise<TorchConvReference> {
    const child = spawn(python, [SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    const stderr: string[] = [];
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
    const lines = createInterface({ input: child.stdout });
    let onLine: ((reply: Reply) => void) | null = null;
    lines.on('line', (line) => {
      try {
        onLine?.(JSON.parse(line) as Reply);
      } catch {
        process.stderr.write(`  [pytorch] ${line}\n`);
      }
    });
    const first = await new Promise<Reply>((resolve, reject) => {
      onLine = resolve;
      child.once('exit', (code) => reject(new BenchError(`bench/kernel_bench_torch.py exited (code ${code}): ${stderr.join('').trim()}`)));
      child.once('error', (error) => reject(new BenchError(`Could not start ${python}: ${error.message}`)));
    });
    const reference = new TorchConvReference(child, first.torch ?? '?');
    onLine = (reply) => reference.waiting.shift()?.(reply);
    child.on('exit', () => {
      for (const resolve of reference.waiting.splice(0)) resolve({ kind: 'error', message: `bench/kernel_bench_torch.py exited: ${stderr.join('').trim()}` });
    });
    return reference;
  }

  /** Seconds per call of PyTorch's kernel for this shape and direction (about `seconds` of measuring). */
  time(shape: ConvShape, direction: Direction, seconds: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.waiting.push((reply) => {
        if (reply.kind === 'time' && typeof reply.seconds === 'number') resolve(reply.seconds);
        else reject(new BenchError(`PyTorch reference: ${reply.message ?? reply.kind}`));
      });
      const { n, h, w, cin, cout, k, pad } = shape;
      this.child.stdin.write(JSON.stringify({ n, h, w, cin, cout, k, pad, direction, seconds }) + '\n');
    });
  }

  close(): void {
    this.child.stdin.end();
  }
}
