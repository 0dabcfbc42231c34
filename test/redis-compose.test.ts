// docker-compose.yml, Dockerfile and .dockerignore, checked without a Docker engine: the compose file parses
// and declares the services, commands, environment and volumes we mean, every flag in a command is one the CLI
// accepts, and the image is built the way the docs say. scripts/compose-e2e.sh runs them for real (.ci/run).
import test from 'ava';
import { freePort } from './fixtures/redis-harness.ts';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { ROOT } from './fixtures/redis-harness.ts';
import { WORKER_HEAP_FLAG } from '../src/pool/redis/worker-heap.ts';

type Yaml = string | number | boolean | null | Yaml[] | { [key: string]: Yaml };
type Map = { [key: string]: Yaml };
const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as Map;
const services = compose.services as Map;
const service = (name: string) => services[name] as Map;

/** ${VAR:-default} → default, as compose does with VAR unset. */
function withDefaults(value: string): string {
  return value.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');
}

/**
 * A service's command as arguments, variables at their defaults. A string command is split by compose after it
 * substitutes the variables (shell words, no shell); ours hold no quotes, so splitting at spaces is that split.
 */
function commandOf(s: Map): string[] {
  if (Array.isArray(s.command)) return (s.command as string[]).map(withDefaults);
  const text = String(s.command);
  if (/['"\\]/.test(text)) throw new Error(`quotes in a string command: ${text}`);
  return withDefaults(text).split(/\s+/).filter((a) => a !== '');
}

async function help(cli: string): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', cli, '--help'], { cwd: ROOT });
  return stdout;
}

/** The CLI's flags in a `node --import tsx <cli> ...` command. */
function flagsOf(command: readonly string[]): string[] {
  const script = command.findIndex((a) => a.endsWith('.ts'));
  return command.slice(script + 1).filter((a) => a.startsWith('--')).map((a) => a.replace(/=.*/, ''));
}

test('docker-compose.yml: redis, a one-shot data download, the coordinator, and workers that scale', async (t) => {
  t.deepEqual(Object.keys(services).sort(), ['coordinator', 'data', 'redis', 'worker']);
  t.deepEqual(Object.keys(compose.volumes as Map).sort(), ['data', 'model']);

  const redis = service('redis');
  t.regex(String(redis.image), /^redis:7/);
  t.deepEqual((redis.healthcheck as Map).test, ['CMD', 'redis-cli', 'ping']);

  const data = service('data');
  t.is(data.build, '.');
  t.deepEqual(data.volumes, ['data:/data']);
  t.deepEqual(commandOf(data).slice(0, 5), ['node', '--import', 'tsx', '--input-type=module', '-e']);
  t.like(data.environment as Map, { CIFAR10_DIR: '/data/cifar-10-batches-bin', CIFAR10_URL: '${CIFAR10_URL:-}', CIFAR10_MD5: '${CIFAR10_MD5:-}' });

  for (const name of ['coordinator', 'worker']) {
    const s = service(name);
    t.is(s.image, data.image, `${name} runs the image the data service builds`);
    t.is(s.build, '.', `${name} can build it too (compose would otherwise try to pull it)`);
    const env = s.environment as Map;
    t.is(env.REDIS_URL, 'redis://redis:6379', name);
    t.is(env.CIFAR10_DIR, '/data/cifar-10-batches-bin', name);
    t.is(env.TRAINER_SECRET, '${TRAINER_SECRET:-}', name);
    t.truthy(env.TRAINER_NAMESPACE, name);
    t.true((s.volumes as string[]).includes('data:/data'), name);
    t.like(s.depends_on as Map, { redis: { condition: 'service_healthy' }, data: { condition: 'service_completed_successfully' } });
    t.is(s.init, true, `${name}: an init process forwards SIGTERM`);
    const command = commandOf(s);
    const script = command.findIndex((a) => a.endsWith('.ts'));
    t.deepEqual(command.slice(0, script).filter((a) => a !== WORKER_HEAP_FLAG), ['node', '--import', 'tsx']);
    t.true(existsSync(path.join(ROOT, command[script])), command[script]);
  }

  const coordinator = service('coordinator');
  const cCommand = commandOf(coordinator);
  t.is(cCommand[3], 'src/cli/coordinator.ts');
  t.true((coordinator.volumes as string[]).includes('model:/model'));
  t.is(cCommand[cCommand.indexOf('--out') + 1], '/model');
  t.is(cCommand[cCommand.indexOf('--batch-size') + 1], '128');
  t.regex(cCommand[cCommand.indexOf('--epochs') + 1], /^\d+$/);
  t.regex(cCommand[cCommand.indexOf('--shards') + 1], /^\d+$/);
  // TRAIN_FLAGS (e.g. --resume) goes last, as separate arguments; unset, it adds none.
  t.regex(String(coordinator.command), /\$\{TRAIN_FLAGS:-\}$/);
  t.is(cCommand.at(-1), cCommand[cCommand.indexOf('--shards') + 1]);

  const worker = service('worker');
  t.deepEqual(commandOf(worker).slice(0, 5), ['node', WORKER_HEAP_FLAG, '--import', 'tsx', 'workers/remote-worker.ts']);
  // `--scale worker=N` needs replicas without a fixed name or host port.
  t.false('container_name' in worker);
  t.false('ports' in worker);
  t.false((worker.volumes as string[]).some((v) => v.startsWith('model')), 'workers never write the model');

  // Every flag in the commands is one the CLI accepts.
  const [coordinatorHelp, workerHelp] = await Promise.all([help('src/cli/coordinator.ts'), help('workers/remote-worker.ts')]);
  for (const flag of flagsOf(cCommand)) t.true(coordinatorHelp.includes(`  ${flag} `), `coordinator ${flag}`);
  for (const flag of flagsOf(commandOf(worker))) t.true(workerHelp.includes(`  ${flag} `), `worker ${flag}`);
  t.regex(workerHelp, /Environment:\n  REDIS_URL .*\n  CIFAR10_DIR .*\n  TRAINER_SECRET /);
});

test('the data service downloads from CIFAR10_URL and fails in one line, without a stack trace', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'compose-data-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const [node, ...args] = commandOf(service('data'));
  t.is(node, 'node');
  const url = `http://127.0.0.1:${await freePort()}/mirror.tar.gz`; // nothing listens there
  const env = { ...process.env, CIFAR10_DIR: path.join(dir, 'cifar-10-batches-bin'), CIFAR10_URL: url, CIFAR10_MD5: '' };
  const err = await t.throwsAsync(promisify(execFile)(process.execPath, args, { cwd: ROOT, env })) as Error & { code: number; stderr: string };
  t.is(err.code, 1);
  t.true(err.stderr.includes(`Error: Could not download CIFAR-10 from ${url}: the connection was refused.`), err.stderr);
  t.notRegex(err.stderr, /\n\s+at /, 'no stack trace');
  t.deepEqual(await readdir(dir), [], 'nothing left behind');
});

test('Dockerfile and .dockerignore: Node 20, a checked npm ci with the optional tfjs-node, sources copied, no VOLUME', (t) => {
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
  t.true(froms.length >= 1 && froms.every((f) => /^node:20\b/.test(f)), froms.join(', '));
  t.regex(dockerfile, /^RUN npm ci .*--include=optional/m);
  // npm ci can exit 0 with a partial node_modules: the tree is checked against the lockfile, and both entry
  // points must load in the final image.
  t.regex(dockerfile, /^ && npm ls --omit=dev --all/m);
  t.regex(dockerfile, /^RUN node --import tsx src\/cli\/coordinator\.ts --help/m);
  t.regex(dockerfile, /^ && node --import tsx workers\/remote-worker\.ts --help/m);
  t.regex(dockerfile, /^COPY package\.json package-lock\.json/m);
  t.regex(dockerfile, /^COPY src \.\/src$/m);
  t.regex(dockerfile, /^COPY workers \.\/workers$/m);
  t.regex(dockerfile, /^ENV [\s\S]*CIFAR10_DIR=\/data\/cifar-10-batches-bin/m);
  // A VOLUME gives every container that mounts nothing there an anonymous volume (workers: /model), which piles up.
  t.notRegex(dockerfile, /^VOLUME/m);
  t.regex(dockerfile, /^RUN mkdir -p \/data \/model && chown node:node \/data \/model$/m);
  t.regex(dockerfile, /^USER node$/m);
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { optionalDependencies?: Record<string, string>; dependencies: Record<string, string> };
  t.truthy(pkg.optionalDependencies?.['@tensorflow/tfjs-node'], 'tfjs-node is optional, so npm ci --include=optional installs it');
  t.truthy(pkg.dependencies.tsx, 'tsx is a runtime dependency (npm ci --omit=dev keeps it)');

  const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  for (const entry of ['node_modules', 'data', 'model', '.git']) t.true(ignored.includes(entry), entry);
  t.false(ignored.includes('src') || ignored.includes('workers'));
});

test('npm run worker and the Dockerfile start workers with the same heap flag as the compose file', async (t) => {
  const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.is(pkg.scripts.worker, `node ${WORKER_HEAP_FLAG} --import tsx workers/remote-worker.ts`);
  const dockerfile = await readFile(path.join(ROOT, 'Dockerfile'), 'utf8');
  t.regex(dockerfile, new RegExp(`^CMD \\["node", "${WORKER_HEAP_FLAG}", "--import", "tsx", "workers/remote-worker.ts"\\]$`, 'm'));
});
