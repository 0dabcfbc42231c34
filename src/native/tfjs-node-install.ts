/**
 * Puts @tensorflow/tfjs-node in working order from a TensorFlow CPU wheel, with nothing downloaded but from the
 * configured package indexes (npm's registry for the package, the local pip index for the wheel).
 *
 * Why: tfjs-node's own install script downloads libtensorflow 2.9.1 and a prebuilt addon from Google's storage.
 * Where that host is unreachable the script fails, and npm, since the package is an optional dependency, drops it
 * and all of its own dependencies: after `npm ci` nothing of it is left. The wheel holds everything the binding
 * needs (libtensorflow_cc.so.2 exports the whole C and eager C API; ../../shared/docs/BACKENDS.md).
 *
 * Steps, each skipped when already done (so a rerun is a load check of a few seconds):
 * 1. the package: `npm install --no-save --ignore-scripts` restores what the lockfile lists and `npm ci` dropped;
 * 2. the wheel: the given file, else one cached under ~/.cache/cifar-dp-trainer/wheels, else `pip download`;
 * 3. deps/: libtensorflow_cc.so.2 and libtensorflow_framework.so.2, the linker names the binding's gyp file asks
 *    for (-ltensorflow), and the C headers it includes;
 * 4. the binding, built from source by the package's own node-pre-gyp (node-gyp, Node's headers from its install
 *    prefix), linked with -z nodelete: TensorFlow cannot be unloaded (see the comment at buildBinding);
 * 5. a check in a fresh process: tfjs-node loads in a worker thread, tf.getBackend() is 'tensorflow', a small
 *    convolution's gradient matches tfjs's cpu backend, and the process exits cleanly after the thread has gone.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { NativeInstallError } from '../errors/index.ts';
import { ZipArchive, ZipFormatError } from './zip-archive.ts';

const run = promisify(execFile);

/** The TensorFlow release `pip download` asks for; the numerics identity reports the one actually loaded. */
export const TENSORFLOW_VERSION = '2.21.0';
const PIP_REQUIREMENT = `tensorflow-cpu==${TENSORFLOW_VERSION}`;

/** What the binding needs from the wheel (paths inside it, under tensorflow/include/ for headers). */
const WHEEL_LIBS = ['tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2'] as const;
const HEADER_PREFIXES = ['tensorflow/c/', 'tensorflow/core/platform/ctstring', 'tsl/platform/ctstring', 'xla/tsl/c/'];
/** tfjs-node's binding.gyp links -ltensorflow -ltensorflow_framework from deps/lib (rpath $ORIGIN/../../deps/lib). */
const LINKER_NAMES: Readonly<Record<string, string>> = {
  'libtensorflow.so': 'libtensorflow_cc.so.2',
  'libtensorflow_framework.so': 'libtensorflow_framework.so.2',
};
const STAMP = 'native-install.json';

export interface NativeInstallOptions {
  /** The project root (holds package.json and node_modules). */
  readonly root: string;
  /** A TensorFlow CPU wheel to use instead of the cached or pip-downloaded one. */
  readonly wheel?: string;
  /** Rebuild even when everything is in place. */
  readonly force?: boolean;
  /** Where the wheel is cached (default $XDG_CACHE_HOME or ~/.cache, then cifar-dp-trainer/wheels). */
  readonly cacheDir?: string;
  readonly log: (line: string) => void;
}

export interface NativeInstallResult {
  /** True when nothing had to be done but the load check. */
  readonly alreadyInstalled: boolean;
  /** TF_Version() of the loaded library. */
  readonly tensorflowVersion: string;
  readonly bindingPath: string;
}

interface Stamp {
  readonly wheel: string;
  readonly wheelBytes: number;
  readonly node?: string;
}

export async function installNative(options: NativeInstallOptions): Promise<NativeInstallResult> {
  const pkg = path.join(options.root, 'node_modules', '@tensorflow', 'tfjs-node');
  const { log } = options;
  // A given wheel is checked before anything in node_modules changes.
  const given = options.wheel !== undefined ? await checkWheel(options.wheel) : undefined;
  await ensurePackage(options.root, pkg, log);
  const binding = await bindingPath(pkg);
  const depsStamp = await readStamp(path.join(pkg, 'deps', STAMP));
  const builtStamp = await readStamp(path.join(path.dirname(binding), STAMP));
  const inPlace = depsStamp !== undefined && builtStamp !== undefined && sameWheel(depsStamp, builtStamp) &&
    builtStamp.node === process.versions.modules && fs.existsSync(binding) && (given === undefined || sameWheel(given, depsStamp));
  if (inPlace && !options.force) {
    const version = await checkLoads(options.root);
    log(`tfjs-node is already in place (TensorFlow ${version} from ${depsStamp.wheel}); it loads.`);
    return { alreadyInstalled: true, tensorflowVersion: version, bindingPath: binding };
  }

  const wheel = options.wheel ?? (await findWheel(options.cacheDir ?? defaultCacheDir(), log));
  const identity = given ?? (await checkWheel(wheel));
  if (options.force || depsStamp === undefined || !sameWheel(depsStamp, identity)) {
    await stageDeps(pkg, wheel, identity, log);
  } else {
    log(`deps/ already holds the libraries and headers of ${identity.wheel}.`);
  }
  await buildBinding(pkg, log);
  await writeStamp(path.join(path.dirname(binding), STAMP), { ...identity, node: process.versions.modules });
  const version = await checkLoads(options.root);
  log(`tfjs-node loads: backend 'tensorflow', TensorFlow ${version}, gradient matches tfjs-cpu.`);
  return { alreadyInstalled: false, tensorflowVersion: version, bindingPath: binding };
}

/** Step 1: after `npm ci` dropped the optional package (its download failed), put it back from the lockfile. */
async function ensurePackage(root: string, pkg: string, log: (line: string) => void): Promise<void> {
  if (await packageComplete(pkg)) return;
  log('Restoring @tensorflow/tfjs-node from the lockfile (npm install --no-save --ignore-scripts)...');
  const npm = process.env.npm_execpath && /npm-cli\.js$/.test(process.env.npm_execpath) ? [process.execPath, process.env.npm_execpath] : ['npm'];
  try {
    await run(npm[0], [...npm.slice(1), 'install', '--no-save', '--ignore-scripts', '--no-audit', '--no-fund', '--include=optional'], {
      cwd: root, maxBuffer: 16 << 20,
    });
  } catch (error) {
    throw new NativeInstallError(`npm could not install @tensorflow/tfjs-node (${lastLine(error)}). Check that the npm registry is reachable.`);
  }
  if (!(await packageComplete(pkg))) {
    throw new NativeInstallError(
      `npm install left no complete @tensorflow/tfjs-node in node_modules; is it still an optionalDependency in package.json and the lockfile?`,
    );
  }
}

/** The package and the two of its dependencies this install uses (node-pre-gyp builds, tfjs is what it wraps). */
async function packageComplete(pkg: string): Promise<boolean> {
  try {
    const require = createRequire(path.join(pkg, 'package.json'));
    require.resolve('@mapbox/node-pre-gyp/package.json');
    require.resolve('@tensorflow/tfjs/package.json');
    return fs.existsSync(path.join(pkg, 'binding.gyp'));
  } catch {
    return false;
  }
}

/** Where node-pre-gyp puts the binding: ./lib/napi-v{N}/tfjs_binding.node, N the highest N-API version both support. */
async function bindingPath(pkg: string): Promise<string> {
  const json = JSON.parse(await readFile(path.join(pkg, 'package.json'), 'utf8')) as {
    binary: { module_name: string; module_path: string; napi_versions: number[] };
  };
  const supported = Number(process.versions.napi);
  const napi = Math.max(...json.binary.napi_versions.filter((v) => v <= supported));
  return path.join(pkg, json.binary.module_path.replace('{napi_build_version}', String(napi)), `${json.binary.module_name}.node`);
}

function defaultCacheDir(): string {
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'cifar-dp-trainer', 'wheels');
}

/** Step 2: a cached wheel, or one `pip download` fetches from the configured index into the cache. */
export async function findWheel(cacheDir: string, log: (line: string) => void): Promise<string> {
  const pattern = new RegExp(`^tensorflow_cpu-${TENSORFLOW_VERSION.replaceAll('.', '\\.')}-.*\\.whl$`);
  const cached = (await readdir(cacheDir).catch(() => [] as string[])).filter((f) => pattern.test(f)).sort();
  if (cached.length > 0) {
    log(`Wheel: ${path.join(cacheDir, cached[0])} (cached).`);
    return path.join(cacheDir, cached[0]);
  }
  const pip = await findPip();
  const tmp = path.join(cacheDir, `.download-${process.pid}`);
  await mkdir(tmp, { recursive: true });
  log(`Downloading ${PIP_REQUIREMENT} with ${pip.join(' ')} from the configured index into ${cacheDir}...`);
  try {
    await run(pip[0], [...pip.slice(1), 'download', '--no-deps', '--disable-pip-version-check', PIP_REQUIREMENT, '-d', tmp], { maxBuffer: 16 << 20 });
    const [file] = (await readdir(tmp)).filter((f) => pattern.test(f));
    if (!file) throw new NativeInstallError(`pip download ${PIP_REQUIREMENT} saved no tensorflow_cpu wheel in ${tmp}.`);
    await rename(path.join(tmp, file), path.join(cacheDir, file));
    return path.join(cacheDir, file);
  } catch (error) {
    if (error instanceof NativeInstallError) throw error;
    throw new NativeInstallError(
      `pip download ${PIP_REQUIREMENT} failed (${lastLine(error)}). The wheel must come from the configured pip index ` +
        `(pip config list shows it); or pass one: npm run native:install -- --wheel FILE.`,
    );
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function findPip(): Promise<string[]> {
  for (const candidate of [['python3', '-m', 'pip'], ['pip3'], ['pip']]) {
    try {
      await run(candidate[0], [...candidate.slice(1), '--version']);
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw new NativeInstallError(
    `pip is not installed (python3 -m pip, pip3 and pip all failed), and it is needed to fetch ${PIP_REQUIREMENT}. ` +
      `Install it (Debian: apt-get install python3-pip) or pass a wheel: npm run native:install -- --wheel FILE.`,
  );
}

/** A wheel that exists, is a zip, and holds the two libraries; its identity (name and size) for the stamps. */
async function checkWheel(file: string): Promise<Stamp> {
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) {
    throw new NativeInstallError(`The wheel ${file} does not exist. Pass a tensorflow_cpu-*.whl file, or leave out --wheel to let pip fetch ${PIP_REQUIREMENT}.`);
  }
  let zip: ZipArchive;
  try {
    zip = await ZipArchive.open(file);
  } catch (error) {
    throw new NativeInstallError(`${file} is not a readable wheel (${(error as Error).message}).`);
  }
  const missing = WHEEL_LIBS.filter((name) => !zip.entries.has(name));
  await zip.close();
  if (missing.length > 0) throw new NativeInstallError(`${file} is not a TensorFlow CPU wheel for Linux: it has no ${missing.join(' or ')}.`);
  return { wheel: path.basename(file), wheelBytes: info.size };
}

function sameWheel(a: Stamp, b: Stamp): boolean {
  return a.wheel === b.wheel && a.wheelBytes === b.wheelBytes;
}

/** Step 3: libraries and headers into deps/, staged beside it and renamed into place. */
async function stageDeps(pkg: string, wheel: string, identity: Stamp, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  const zip = await ZipArchive.open(wheel);
  const staging = path.join(pkg, `deps.staging-${process.pid}`);
  try {
    await rm(staging, { recursive: true, force: true });
    for (const name of WHEEL_LIBS) await zip.extract(name, path.join(staging, 'lib', path.basename(name)));
    for (const [link, target] of Object.entries(LINKER_NAMES)) await symlink(target, path.join(staging, 'lib', link));
    const headers = [...zip.entries.keys()].filter((name) => {
      const rel = name.startsWith('tensorflow/include/') ? name.slice('tensorflow/include/'.length) : '';
      return rel.endsWith('.h') && HEADER_PREFIXES.some((prefix) => rel.startsWith(prefix));
    });
    if (!headers.some((h) => h.endsWith('tensorflow/c/c_api.h'))) throw new NativeInstallError(`${wheel} holds no C headers (tensorflow/include/tensorflow/c/c_api.h).`);
    for (const name of headers) await zip.extract(name, path.join(staging, 'include', name.slice('tensorflow/include/'.length)));
    await writeStamp(path.join(staging, STAMP), identity);
    await rm(path.join(pkg, 'deps'), { recursive: true, force: true });
    await rename(staging, path.join(pkg, 'deps'));
    log(`deps/: libtensorflow_cc.so.2, libtensorflow_framework.so.2 and ${headers.length} headers from ${identity.wheel} (${seconds(started)}).`);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    if (error instanceof ZipFormatError) throw new NativeInstallError(`${error.message}. Delete it and run again, or pass another --wheel.`);
    throw error;
  } finally {
    await zip.close();
  }
}

/**
 * Step 4. Linked with -z nodelete (LDFLAGS, which gyp's Makefiles append): Node unloads (dlclose) the addons a
 * worker thread loaded when that thread ends, and libtensorflow_cc.so.2 leaves behind an exit handler (a static
 * registry's destructor, registered with __cxa_atexit) and its thread pool's threads, all pointing into the
 * unmapped code: the process died with SIGSEGV in exit() after any ThreadPool on node was closed. With the flag
 * the binding, and through it TensorFlow, stays loaded until the process ends.
 */
async function buildBinding(pkg: string, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  for (const tool of ['g++', 'make']) {
    try {
      await run('sh', ['-c', `command -v ${tool}`]);
    } catch {
      throw new NativeInstallError(`${tool} is not installed; it is needed to build tfjs-node's binding (Debian: apt-get install g++ make).`);
    }
  }
  const nodedir = process.env.npm_config_nodedir || path.resolve(path.dirname(process.execPath), '..');
  if (!fs.existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'))) {
    throw new NativeInstallError(
      `Node's C headers are not in ${path.join(nodedir, 'include', 'node')} (node-gyp would download them, which this install does not do). ` +
        `Install them (Debian: the nodejs package's headers) or point npm_config_nodedir at a Node install prefix that has them.`,
    );
  }
  const preGyp = createRequire(path.join(pkg, 'package.json')).resolve('@mapbox/node-pre-gyp/bin/node-pre-gyp');
  log(`Building the binding from source (node-pre-gyp, Node headers in ${nodedir}/include/node)...`);
  const output: string[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, [preGyp, 'install', '--build-from-source'], {
      cwd: pkg,
      env: { ...process.env, npm_config_nodedir: nodedir, LDFLAGS: `${process.env.LDFLAGS ?? ''} -Wl,-z,nodelete`.trim() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk: Buffer) => output.push(...chunk.toString().split('\n').filter(Boolean).slice(-40));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) {
    const tail = output.filter((l) => !/^gyp info|^node-pre-gyp info/.test(l)).slice(-12).join('\n  ');
    throw new NativeInstallError(`Building tfjs-node's binding failed (node-pre-gyp exit code ${code}). Its last lines:\n  ${tail}`);
  }
  await rm(path.join(pkg, 'build'), { recursive: true, force: true });
  log(`Binding built (${seconds(started)}).`);
}

/**
 * Step 5, in a fresh process: load tfjs-node in a worker thread, compare a gradient with tfjs-cpu's, let the
 * thread end, exit. Returns TF_Version().
 */
async function checkLoads(root: string): Promise<string> {
  const inThread = `
const { parentPort } = require('node:worker_threads');
const tf = require('@tensorflow/tfjs-node');
const backend = tf.getBackend();
const version = tf.backend().binding.TF_Version;
const x = tf.tensor4d(Array.from({ length: 2 * 6 * 6 * 2 }, (_, i) => Math.sin(i)), [2, 6, 6, 2]);
const w = tf.tensor4d(Array.from({ length: 3 * 3 * 2 * 4 }, (_, i) => Math.cos(i)), [3, 3, 2, 4]);
const grad = () => Array.from(tf.grad((v) => tf.conv2d(x, v, 1, 'valid').relu().square().sum())(w).dataSync());
const native = grad();
tf.setBackend('cpu');
const cpu = grad();
const diff = Math.max(...native.map((v, i) => Math.abs(v - cpu[i]) / Math.max(1, Math.abs(cpu[i]))));
parentPort.postMessage({ backend, version, diff });`;
  const script = `
const { Worker } = require('node:worker_threads');
const w = new Worker(${JSON.stringify('INTHREAD')}, { eval: true });
w.once('message', (m) => console.log(JSON.stringify(m)));
w.once('error', (e) => { console.log(JSON.stringify({ error: e.message })); process.exitCode = 2; });`.replace('"INTHREAD"', JSON.stringify(inThread));
  let stdout = '';
  try {
    ({ stdout } = await run(process.execPath, ['-e', script], { cwd: root, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' }, timeout: 120_000 }));
  } catch (error) {
    const e = error as { signal?: string; code?: number; stderr?: string };
    throw new NativeInstallError(
      `tfjs-node does not load cleanly (${e.signal ? `killed by ${e.signal}` : `exit code ${e.code}`}: ${lastLine(error)}). Run npm run native:install -- --force.`,
    );
  }
  const result = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { backend?: string; version?: string; diff?: number; error?: string };
  if (result.error) throw new NativeInstallError(`tfjs-node fails to load: ${result.error}. Run npm run native:install -- --force.`);
  if (result.backend !== 'tensorflow') throw new NativeInstallError(`tfjs-node loaded, but tfjs's backend is '${result.backend}', not 'tensorflow'.`);
  if (!(typeof result.diff === 'number' && result.diff < 1e-4)) {
    throw new NativeInstallError(`tfjs-node loads, but a convolution's gradient differs from tfjs-cpu's by ${result.diff} (relative).`);
  }
  return String(result.version);
}

async function readStamp(file: string): Promise<Stamp | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Stamp;
  } catch {
    return undefined;
  }
}

async function writeStamp(file: string, stamp: Stamp): Promise<void> {
  await writeFile(file, JSON.stringify(stamp) + '\n');
}

function lastLine(error: unknown): string {
  const e = error as { stderr?: string; message?: string };
  const lines = `${e.stderr ?? ''}\n${e.message ?? String(error)}`.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.filter((l) => !/^(Command failed|WARNING: All log messages|I0000)/.test(l)).pop() ?? 'no output';
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}
