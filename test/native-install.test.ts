// npm run native:install's checks that need no TensorFlow wheel: the one-line errors for a missing or wrong
// wheel and a missing pip, and the zip reader it extracts the wheel with. The install itself runs in .ci/run
// (and the node backend's tests, test/native-backend.test.ts, use what it installed).
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, chmod, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { ZipArchive, ZipFormatError } from '../src/native/zip-archive.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

/** A zip in the real format (local headers, central directory, end record): each entry stored or deflated. */
function zipOf(entries: readonly { name: string; data: Buffer; deflate?: boolean }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const { name, data, deflate } of entries) {
    const body = deflate ? zlib.deflateRawSync(data) : data;
    const fixed = (signature: number, size: number) => {
      const b = Buffer.alloc(size);
      b.writeUInt32LE(signature, 0);
      return b;
    };
    const local = fixed(0x04034b50, 30);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(deflate ? 8 : 0, 8);
    local.writeUInt32LE(zlib.crc32(data), 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(Buffer.byteLength(name), 26);
    const central = fixed(0x02014b50, 46);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(deflate ? 8 : 0, 10);
    central.writeUInt32LE(zlib.crc32(data), 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(Buffer.byteLength(name), 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, Buffer.from(name), body);
    centrals.push(central, Buffer.from(name));
    offset += 30 + Buffer.byteLength(name) + body.length;
  }
  const dir = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(dir.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, dir, end]);
}

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'native-install-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function install(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', 'src/cli/native-install.ts', ...args], {
      cwd: root, env: { ...process.env, ...env }, timeout: 120_000,
    }, (_error, stdout, stderr) => resolve({ code: child.exitCode, output: stdout + stderr }));
  });
}

test('ZipArchive extracts stored and deflated entries byte for byte, and refuses a damaged one', async (t) => {
  const dir = await tempDir(t);
  const big = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251));
  const file = path.join(dir, 'a.whl');
  await writeFile(file, zipOf([{ name: 'tensorflow/a.txt', data: Buffer.from('hello') }, { name: 'tensorflow/libx.so.2', data: big, deflate: true }]));
  const zip = await ZipArchive.open(file);
  t.deepEqual([...zip.entries.keys()], ['tensorflow/a.txt', 'tensorflow/libx.so.2']);
  await zip.extract('tensorflow/libx.so.2', path.join(dir, 'out', 'libx.so.2'));
  await zip.extract('tensorflow/a.txt', path.join(dir, 'out', 'a.txt'));
  t.true((await readFile(path.join(dir, 'out', 'libx.so.2'))).equals(big));
  t.is(await readFile(path.join(dir, 'out', 'a.txt'), 'utf8'), 'hello');
  await t.throwsAsync(zip.extract('nope', path.join(dir, 'x')), { instanceOf: ZipFormatError });
  await zip.close();

  const bytes = await readFile(file);
  bytes[30 + 'tensorflow/a.txt'.length + 1] ^= 0xff; // inside the stored entry's data
  await writeFile(file, bytes);
  const damaged = await ZipArchive.open(file);
  await t.throwsAsync(damaged.extract('tensorflow/a.txt', path.join(dir, 'y')), { instanceOf: ZipFormatError, message: /damaged/ });
  await damaged.close();
  await t.throwsAsync(ZipArchive.open(path.join(root, 'package.json')), { instanceOf: ZipFormatError, message: /not a zip archive/ });
});

test('native:install --wheel: a missing file, a file that is no zip and a zip without libtensorflow each get one line, before anything is installed', async (t) => {
  const dir = await tempDir(t);
  const missing = await install(['--wheel', path.join(dir, 'none.whl')]);
  t.is(missing.code, 1);
  t.regex(missing.output, /Error: The wheel .*none\.whl does not exist\. Pass a tensorflow_cpu-\*\.whl file/);
  await writeFile(path.join(dir, 'junk.whl'), 'not a zip');
  const junk = await install(['--wheel', path.join(dir, 'junk.whl')]);
  t.is(junk.code, 1);
  t.regex(junk.output, /Error: .*junk\.whl is not a readable wheel/);
  await writeFile(path.join(dir, 'other.whl'), zipOf([{ name: 'numpy/__init__.py', data: Buffer.from('') }]));
  const other = await install(['--wheel', path.join(dir, 'other.whl')]);
  t.is(other.code, 1);
  t.regex(other.output, /Error: .*other\.whl is not a TensorFlow CPU wheel for Linux: it has no tensorflow\/libtensorflow_cc\.so\.2/);
  for (const r of [missing, junk, other]) {
    t.notRegex(r.output, /at .*\.ts:\d+/, 'no stack trace');
    t.notRegex(r.output, /Restoring|Building/, 'nothing was started');
  }
});

test('native:install without pip and without a cached wheel says how to get one', async (t) => {
  const dir = await tempDir(t);
  const bin = path.join(dir, 'bin');
  await mkdir(bin);
  for (const tool of ['python3', 'pip3', 'pip']) {
    await writeFile(path.join(bin, tool), '#!/bin/sh\nexit 127\n');
    await chmod(path.join(bin, tool), 0o755);
  }
  const script = path.join(dir, 'find-wheel.mts');
  await writeFile(script, `
    import { findWheel } from ${JSON.stringify(path.join(root, 'src/native/tfjs-node-install.ts'))};
    try { await findWheel(${JSON.stringify(path.join(dir, 'cache'))}, () => undefined); console.log('found'); }
    catch (e) { console.log(e.name + ': ' + e.message); }`);
  const output = await new Promise<string>((resolve) => execFile(process.execPath, ['--import', 'tsx', script], {
    cwd: root, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
  }, (_e, stdout, stderr) => resolve(stdout + stderr)));
  t.regex(output, /^NativeInstallError: pip is not installed .* \(Debian: apt-get install python3-pip\) or pass a wheel: npm run native:install -- --wheel FILE\.$/m);
});
