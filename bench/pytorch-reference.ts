/**
 * PyTorch side by side: finds a Python with torch, starts bench/pytorch_step.py in its serve mode once, and
 * asks it for one measurement at a time, so PyTorch and tfjs runs interleave without `import torch` each time.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { BenchError } from './bench-error.ts';

const SCRIPT = fileURLToPath(new URL('./pytorch_step.py', import.meta.url));

export const PYTORCH_INSTALL_HINT =
  'PyTorch not found: none of $PYTHON, /usr/bin/python3, python3 can `import torch, numpy`. ' +
  'On Debian/Ubuntu: `apt-get install python3-torch` (then /usr/bin/python3 has it), or `pip install torch numpy` ' +
  'into a Python and pass it as PYTHON=/path/to/python or --python.';

export interface PythonChoice {
  readonly executable: string;
  /** Candidates tried before it, with why each was refused. */
  readonly refused: readonly string[];
}

/** The first of [explicit, $PYTHON, /usr/bin/python3, python3] that imports torch and numpy, or null. */
export function findPythonWithTorch(explicit?: string, env: NodeJS.ProcessEnv = process.env): PythonChoice | null {
  const candidates = [explicit, env.PYTHON, '/usr/bin/python3', 'python3'].filter((c): c is string => Boolean(c));
  const refused: string[] = [];
  for (const candidate of [...new Set(candidates)]) {
    const probe = spawnSync(candidate, ['-c', 'import torch, numpy'], { encoding: 'utf8', timeout: 60_000 });
    if (probe.status === 0) return { executable: candidate, refused };
    const why = probe.error ? probe.error.message : (probe.stderr || '').trim().split('\n').at(-1) || `exit ${probe.status}`;
    refused.push(`${candidate}: ${why}`);
  }
  return null;
}

export interface PytorchInfo {
  readonly torch: string;
  readonly python: string;
  readonly executable: string;
  /** BLAS PyTorch was built with ("generic" = reference BLAS, Debian's default). */
  readonly blas: string;
  /** 'cifar-10' (the real files) or 'random'. */
  readonly data: string;
}

export interface PytorchTrainResult {
  readonly batch: number;
  readonly threads: number;
  readonly steps: number;
  readonly seconds: number;
  readonly imagesPerSecond: number;
  readonly msPerStep: number;
  readonly maxRssKB: number;
}

export interface PytorchEvalResult {
  readonly threads: number;
  readonly images: number;
  readonly seconds: number;
  readonly maxRssKB: number;
}

type Reply = { kind: string; message?: string } & Record<string, unknown>;

export class PytorchReference {
  private readonly waiting: ((reply: Reply) => void)[] = [];
  private exited: string | null = null;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly info: PytorchInfo,
  ) {}

  static async start(python: string, dataDir: string): Promise<PytorchReference> {
    const child = spawn(python, [SCRIPT, '--serve', '--data', dataDir], { stdio: ['pipe', 'pipe', 'pipe'] });
    const stderr: string[] = [];
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
    const lines = createInterface({ input: child.stdout });
    const queue: Reply[] = [];
    let onLine: ((reply: Reply) => void) | null = null;
    lines.on('line', (line) => {
      let reply: Reply;
      try {
        reply = JSON.parse(line) as Reply;
      } catch {
        process.stderr.write(`  [pytorch] ${line}\n`);
        return;
      }
      if (onLine) onLine(reply);
      else queue.push(reply);
    });
    const first = await new Promise<Reply>((resolve, reject) => {
      onLine = resolve;
      child.once('exit', (code) => reject(new BenchError(`bench/pytorch_step.py exited (code ${code}) before it was ready: ${stderr.join('').trim()}`)));
      child.once('error', (error) => reject(new BenchError(`Could not start ${python}: ${error.message}`)));
    }).catch((error: unknown) => {
      child.kill('SIGKILL');
      throw error;
    });
    if (first.kind !== 'ready') {
      child.kill('SIGKILL');
      throw new BenchError(`bench/pytorch_step.py said '${first.kind}' instead of ready.`);
    }
    const reference = new PytorchReference(child, first as unknown as PytorchInfo);
    onLine = (reply) => reference.waiting.shift()?.(reply);
    for (const reply of queue) onLine(reply);
    child.on('exit', (code, signal) => {
      reference.exited = `exited with ${signal ?? `code ${code}`}: ${stderr.join('').trim().split('\n').slice(-3).join(' | ')}`;
      for (const resolve of reference.waiting.splice(0)) resolve({ kind: 'error', message: `bench/pytorch_step.py ${reference.exited}` });
    });
    return reference;
  }

  async train(batch: number, threads: number, images: number, warmup: number): Promise<PytorchTrainResult> {
    return (await this.request({ kind: 'train', batch, threads, images, warmup }, 'train')) as unknown as PytorchTrainResult;
  }

  async evaluate(threads: number, images = 10_000, batch = 500): Promise<PytorchEvalResult> {
    return (await this.request({ kind: 'eval', threads, images, batch }, 'eval')) as unknown as PytorchEvalResult;
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }

  private request(message: Record<string, unknown>, expected: string): Promise<Reply> {
    if (this.exited) return Promise.reject(new BenchError(`bench/pytorch_step.py ${this.exited}`));
    return new Promise<Reply>((resolve, reject) => {
      this.waiting.push((reply) => {
        if (reply.kind === expected) resolve(reply);
        else reject(new BenchError(`PyTorch reference: ${reply.message ?? `answered '${reply.kind}'`}`));
      });
      this.child.stdin.write(JSON.stringify(message) + '\n');
    });
  }
}
