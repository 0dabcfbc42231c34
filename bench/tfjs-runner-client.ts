/** The parent's handle on one tfjs runner child (./tfjs-runner.ts): start it, ask it to measure, close it. */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { EvalReply, RunnerConfig, RunnerReply, RunnerRequest, TrainReply, TrainRequest } from './runner-messages.ts';
import { BenchError } from './bench-error.ts';

const RUNNER_FILE = fileURLToPath(new URL('./tfjs-runner.ts', import.meta.url));

export class TfjsRunnerClient {
  private pending: { resolve: (reply: RunnerReply) => void; reject: (error: Error) => void } | null = null;
  private exited: string | null = null;
  /** The pool's own description, e.g. "2 local worker threads (wasm)". */
  describe = '';

  private constructor(
    private readonly child: ChildProcess,
    readonly label: string,
  ) {}

  /** Forks the child, loads the data and creates the pool there. `label` prefixes the child's log lines. */
  static async start(label: string, config: RunnerConfig): Promise<TfjsRunnerClient> {
    const child = fork(RUNNER_FILE, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const prefix = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') process.stderr.write(`  [${label}] ${line}\n`);
    };
    child.stdout?.on('data', prefix);
    child.stderr?.on('data', prefix);
    const client = new TfjsRunnerClient(child, label);
    child.on('message', (reply: RunnerReply) => client.settle(reply));
    child.on('exit', (code, signal) => {
      client.exited = `exited with ${signal ?? `code ${code}`}`;
      client.pending?.reject(new BenchError(`The ${label} benchmark process ${client.exited}.`));
      client.pending = null;
    });
    const ready = await client.request({ kind: 'init', config }).catch((error: unknown) => {
      client.kill();
      throw error;
    });
    if (ready.kind !== 'ready') throw new BenchError(`The ${label} benchmark process answered '${ready.kind}' to init.`);
    client.describe = ready.describe;
    return client;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  async train(request: Omit<TrainRequest, 'kind'>): Promise<TrainReply> {
    const reply = await this.request({ kind: 'train', ...request });
    if (reply.kind !== 'trained') throw new BenchError(`The ${this.label} benchmark process answered '${reply.kind}' to train.`);
    return reply;
  }

  async evaluate(): Promise<EvalReply> {
    const reply = await this.request({ kind: 'eval' });
    if (reply.kind !== 'evaluated') throw new BenchError(`The ${this.label} benchmark process answered '${reply.kind}' to eval.`);
    return reply;
  }

  /** Closes the pool and lets the child exit; kills it if it does not within 20 s. */
  async close(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    try {
      await this.request({ kind: 'close' }).catch(() => undefined);
      await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the child at once (on the parent's way out after an error). */
  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }

  private request(message: RunnerRequest): Promise<RunnerReply> {
    if (this.exited) return Promise.reject(new BenchError(`The ${this.label} benchmark process ${this.exited}.`));
    if (this.pending) return Promise.reject(new Error('TfjsRunnerClient: one request at a time.'));
    return new Promise<RunnerReply>((resolve, reject) => {
      this.pending = { resolve, reject };
      this.child.send(message);
    });
  }

  private settle(reply: RunnerReply): void {
    const pending = this.pending;
    this.pending = null;
    if (!pending) return;
    if (reply.kind === 'error') pending.reject(new BenchError(`${this.label}: ${reply.message}`));
    else pending.resolve(reply);
  }
}
