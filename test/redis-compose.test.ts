// docker-compose.yml, Dockerfile and .dockerignore, checked without a Docker engine (none on our machines):
// the compose file parses and declares the services, commands, environment and volumes we mean, every flag in
// a command is one the CLI accepts, and the image is built the way the docs say.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseYaml, type Yaml } from './fixtures/mini-yaml.ts';
import { ROOT } from './fixtures/redis-harness.ts';
import { WORKER_HEAP_FLAG } from '../src/pool/redis/worker-heap.ts';

type Map = { [key: string]: Yaml };
const compose = parseYaml(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as Map;
const services = compose.services as Map;
const service = (name: string) => services[name] as Map;

/** ${VAR:-default} → default, as compose does with VAR unset. */
function withDefaults(value: string): string {
  return value.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');
}

async function help(cli: string): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', cli, '--help'], { cwd: ROOT });
  return stdout;
}

/** The CLI's flags in a `node --import tsx <cli> ...` command. */
function flagsOf(command: readonly Yaml[]): string[] {
  const script = command.findIndex((a) => typeof a === 'string' && a.endsWith('.ts'));
  return command.slice(script + 1).filter((a): a is string => typeof a === 'string' && a.startsWith('--')).map((a) => a.replace(/=.*/, ''));
}

test('the YAML subset parser reads what it supports and refuses what it does not', (t) => {
  t.deepEqual(parseYaml('a: 1\nb:\n  c: "x # y" # comment\n  d:\n    - e\n    - \'f\'\'s\'\n  g: [1, "two"]\nh:\n- i\n'), {
    a: 1, b: { c: 'x # y', d: ['e', "f's"], g: [1, 'two'] }, h: ['i'],
  });
  for (const bad of ['a: &anchor 1', 'a: *alias', 'a: |\n  text', 'a: {b: 1}', 'a: 1\na: 2', 'a:\n  - b: c', 'a: 1\n   b: 2', 'a: b: c']) {
    t.throws(() => parseYaml(bad), undefined, bad);
  }
});

test('docker-compose.yml: redis, a one-shot data download, the coordinator, and workers that scale', async (t) => {
  t.deepEqual(Object.keys(services).sort(), ['coordinator', 'data', 'redis', 'worker']);
  t.deepEqual(Object.keys(compose.volumes as Map).sort(), ['data', 'model']);

  const redis = service('redis');
  t.regex(String(redis.image), /^redis:7/);
  t.deepEqual((redis.healthcheck as Map).test, ['CMD', 'redis-cli', 'ping']);

  const data = service('data');
  t.is(data.build, '.');
  t.deepEqual(data.volumes, ['data:/data']);
  t.regex((data.command as string[]).join(' '), /ensureCifar10\(process\.env\.CIFAR10_DIR\)/);
  t.true(existsSync(path.join(ROOT, 'src/data/cifar10-download.ts')));

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
    const command = s.command as string[];
    const script = command.findIndex((a) => a.endsWith('.ts'));
    t.deepEqual(command.slice(0, script).filter((a) => a !== WORKER_HEAP_FLAG), ['node', '--import', 'tsx']);
    t.true(existsSync(path.join(ROOT, command[script])), command[script]);
  }

  const coordinator = service('coordinator');
  const cCommand = (coordinator.command as string[]).map(withDefaults);
  t.is(cCommand[3], 'src/cli/coordinator.ts');
  t.true((coordinator.volumes as string[]).includes('model:/model'));
  t.is(cCommand[cCommand.indexOf('--out') + 1], '/model');
  t.is(cCommand[cCommand.indexOf('--batch-size') + 1], '128');
  t.regex(cCommand[cCommand.indexOf('--epochs') + 1], /^\d+$/);
  t.regex(cCommand[cCommand.indexOf('--shards') + 1], /^\d+$/);

  const worker = service('worker');
  t.deepEqual((worker.command as string[]).slice(0, 5), ['node', WORKER_HEAP_FLAG, '--import', 'tsx', 'workers/remote-worker.ts']);
  // `--scale worker=N` needs replicas without a fixed name or host port.
  t.false('container_name' in worker);
  t.false('ports' in worker);
  t.false((worker.volumes as string[]).some((v) => v.startsWith('model')), 'workers never write the model');

  // Every flag in the commands is one the CLI accepts.
  const [coordinatorHelp, workerHelp] = await Promise.all([help('src/cli/coordinator.ts'), help('workers/remote-worker.ts')]);
  for (const flag of flagsOf(coordinator.command as string[])) t.true(coordinatorHelp.includes(`  ${flag} `), `coordinator ${flag}`);
  for (const flag of flagsOf(worker.command as string[])) t.true(workerHelp.includes(`  ${flag} `), `worker ${flag}`);
  t.regex(workerHelp, /Environment:\n  REDIS_URL .*\n  CIFAR10_DIR .*\n  TRAINER_SECRET /);
});

test('Dockerfile and .dockerignore: Node 20, npm ci with the optional tfjs-node, sources copied, data and model as volumes', (t) => {
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
  t.true(froms.length >= 1 && froms.every((f) => /^node:20\b/.test(f)), froms.join(', '));
  t.regex(dockerfile, /^RUN npm ci .*--include=optional/m);
  t.regex(dockerfile, /^COPY package\.json package-lock\.json/m);
  t.regex(dockerfile, /^COPY src \.\/src$/m);
  t.regex(dockerfile, /^COPY workers \.\/workers$/m);
  t.regex(dockerfile, /^ENV [\s\S]*CIFAR10_DIR=\/data\/cifar-10-batches-bin/m);
  t.regex(dockerfile, /^VOLUME \["\/data", "\/model"\]$/m);
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
