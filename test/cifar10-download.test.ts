import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { loadCifar10 } from '../src/data/cifar10-dataset.ts';
import { CIFAR10_MD5, CIFAR10_URL, ensureCifar10 } from '../src/data/cifar10-download.ts';
import { CIFAR10_FILES } from '../src/data/cifar10-files.ts';
import { unpackArchive } from '../src/data/cifar10-archive.ts';
import { ProgressBar } from '../src/terminal/progress-bar.ts';
import { DatasetDownloadError, DatasetError } from '../src/errors/index.ts';
import { freePort } from './fixtures/redis-harness.ts';
import { fixtureTarGz, md5Hex, tempFolder, writeCifar10Fixture, writeTar } from './fixtures/cifar10-fixture.ts';

interface Server {
  readonly base: string;
  /** Paths requested, in order. */
  readonly hits: string[];
  close(): Promise<void>;
}

/** Serves `routes` on 127.0.0.1: a Buffer is a 200 with Content-Length; a string is a 302 to it. */
async function serve(routes: Record<string, Buffer | string | ((res: http.ServerResponse) => void)>): Promise<Server> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    const route = routes[req.url ?? ''];
    if (route === undefined) {
      res.writeHead(404).end('not here');
    } else if (typeof route === 'string') {
      res.writeHead(302, { location: route }).end();
    } else if (typeof route === 'function') {
      route(res);
    } else {
      res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': route.length });
      // in several pieces, as a real transfer arrives
      for (let o = 0; o < route.length; o += 4096) res.write(route.subarray(o, o + 4096));
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    hits,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function archiveFixture(perFile = 3, omit?: string) {
  const fx = await writeCifar10Fixture({ perFile, testCount: 4 });
  const tgz = await fixtureTarGz(fx.dir, { omit });
  return { fx, tgz, md5: md5Hex(tgz) };
}

test('downloads through a redirect, verifies the MD5, unpacks into the folder, and the result loads', async (t) => {
  const { fx, tgz, md5 } = await archiveFixture();
  t.teardown(fx.cleanup);
  const server = await serve({ '/files/cifar-10-binary.tar.gz': tgz, '/get': '/files/cifar-10-binary.tar.gz' });
  t.teardown(server.close);
  const tmp = await tempFolder();
  t.teardown(tmp.cleanup);
  // The folder's name need not be cifar-10-batches-bin, and its parent need not exist yet.
  const dir = path.join(tmp.root, 'data', 'my-cifar');
  const lines: string[] = [];
  await ensureCifar10(dir, { url: `${server.base}/get`, md5, log: (l) => lines.push(l), progress: false });

  t.deepEqual(server.hits, ['/get', '/files/cifar-10-binary.tar.gz']);
  t.deepEqual((await readdir(dir)).sort(), [...CIFAR10_FILES].sort());
  for (const name of CIFAR10_FILES) {
    t.deepEqual(await readFile(path.join(dir, name)), await readFile(path.join(fx.dir, name)), name);
  }
  t.deepEqual(await readdir(path.join(tmp.root, 'data')), ['my-cifar'], 'no temporary folder left beside it');
  const loaded = await loadCifar10(dir);
  const original = await loadCifar10(fx.dir);
  t.is(loaded.train.count, 15);
  t.is(loaded.test.count, 4);
  t.is(loaded.fingerprint, original.fingerprint);
  t.true(lines.some((l) => l.includes(`${server.base}/get`)), lines.join('\n'));
  t.true(lines.some((l) => l.includes(md5)), lines.join('\n'));

  // Once the files are there, nothing is fetched: an unreachable URL does not matter.
  await ensureCifar10(dir, { url: 'http://127.0.0.1:1/', md5: '0'.repeat(32), progress: false, log: () => {} });
  t.is(server.hits.length, 2);
});

test('an empty existing folder is filled', async (t) => {
  const { fx, tgz, md5 } = await archiveFixture(1);
  t.teardown(fx.cleanup);
  const server = await serve({ '/a.tar.gz': tgz });
  t.teardown(server.close);
  const tmp = await tempFolder();
  t.teardown(tmp.cleanup);
  const dir = path.join(tmp.root, 'cifar-10-batches-bin');
  await mkdir(dir);
  await ensureCifar10(dir, { url: `${server.base}/a.tar.gz`, md5, progress: false, log: () => {} });
  t.is((await loadCifar10(dir)).train.count, 5);
});

test('a folder holding only some of the files is left alone: DatasetError naming what is missing', async (t) => {
  const fx = await writeCifar10Fixture({ perFile: 1 });
  t.teardown(fx.cleanup);
  await writeFile(path.join(fx.dir, 'notes.txt'), 'mine');
  await rm(path.join(fx.dir, 'test_batch.bin'));
  const err = await t.throwsAsync(
    ensureCifar10(fx.dir, { url: 'http://127.0.0.1:1/', progress: false, log: () => {} }),
    { instanceOf: DatasetError },
  );
  t.false(err instanceof DatasetDownloadError);
  t.true(err!.message.includes(fx.dir));
  t.regex(err!.message, /lacks test_batch\.bin/);
  t.is(await readFile(path.join(fx.dir, 'notes.txt'), 'utf8'), 'mine');
});

test('a wrong MD5 is rejected and leaves no folder behind', async (t) => {
  const { fx, tgz } = await archiveFixture();
  t.teardown(fx.cleanup);
  const server = await serve({ '/cifar.tar.gz': tgz });
  t.teardown(server.close);
  const tmp = await tempFolder();
  t.teardown(tmp.cleanup);
  const dir = path.join(tmp.root, 'data', 'cifar-10-batches-bin');
  const url = `${server.base}/cifar.tar.gz`;
  const err = await t.throwsAsync(
    ensureCifar10(dir, { url, md5: CIFAR10_MD5, progress: false, log: () => {} }),
    { instanceOf: DatasetDownloadError },
  );
  t.true(err!.message.includes(url));
  t.true(err!.message.includes(dir), 'names the folder to fill by hand');
  t.regex(err!.message, /--data \/ CIFAR10_DIR/);
  t.regex(err!.message, new RegExp(`MD5 is ${md5Hex(tgz)}, not the expected ${CIFAR10_MD5}`));
  t.deepEqual(await readdir(tmp.root), [], 'neither the folder nor the data/ folder created for it remain');
});

test('an unreachable URL is a DatasetDownloadError naming the URL and the folder', async (t) => {
  const tmp = await tempFolder();
  t.teardown(tmp.cleanup);
  const dir = path.join(tmp.root, 'cifar-10-batches-bin');
  const url = `http://127.0.0.1:${await freePort()}/`; // nothing listens there
  const err = await t.throwsAsync(ensureCifar10(dir, { url, progress: false, log: () => {} }), { instanceOf: DatasetDownloadError });
  t.true(err!.message.includes(url));
  t.true(err!.message.includes(dir));
  t.regex(err!.message, /refused/);
  t.deepEqual(await readdir(tmp.root), []);
});

test('an HTTP error, a cut-off transfer, a non-gzip body and an incomplete archive are DatasetDownloadErrors', async (t) => {
  const good = await archiveFixture(2);
  t.teardown(good.fx.cleanup);
  const lacking = await archiveFixture(2, 'test_batch.bin');
  t.teardown(lacking.fx.cleanup);
  const notGzip = Buffer.from('<html>this is not the archive</html>');
  const server = await serve({
    '/cut': (res) => {
      res.writeHead(200, { 'content-length': good.tgz.length });
      res.write(good.tgz.subarray(0, 1000), () => res.destroy());
    },
    '/html': notGzip,
    '/lacking': lacking.tgz,
  });
  t.teardown(server.close);
  const cases: [string, string, RegExp][] = [
    ['/missing', good.md5, /HTTP 404/],
    ['/cut', good.md5, /./],
    ['/html', md5Hex(notGzip), /unpacking the archive failed/],
    ['/lacking', lacking.md5, /lacks test_batch\.bin/],
  ];
  for (const [route, md5, why] of cases) {
    const tmp = await tempFolder();
    t.teardown(tmp.cleanup);
    const dir = path.join(tmp.root, 'cifar-10-batches-bin');
    const url = `${server.base}${route}`;
    const err = await t.throwsAsync(ensureCifar10(dir, { url, md5, progress: false, log: () => {} }), {
      instanceOf: DatasetDownloadError,
    });
    t.true(err!.message.includes(url), err!.message);
    t.regex(err!.message, why);
    t.deepEqual(await readdir(tmp.root), [], `${route}: nothing left behind`);
  }
});

/** `tar` (uncompressed bytes) gzipped into a file of `dir`. */
async function tarGzFile(dir: string, name: string, tar: Buffer): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, gzipSync(tar));
  return file;
}

test('unpacking refuses entries whose path leaves the destination', async (t) => {
  const tmp = await tempFolder();
  t.teardown(tmp.cleanup);
  const dest = path.join(tmp.root, 'dest');
  await mkdir(dest);
  for (const [i, name] of ['../evil.txt', '/tmp/evil.txt', 'a/../../evil.txt'].entries()) {
    const file = await tarGzFile(tmp.root, `evil${i}.tar.gz`, writeTar([{ name, data: Buffer.from('x') }]));
    await t.throwsAsync(unpackArchive(file, dest), { message: /unsafe path/ });
  }
  t.deepEqual(await readdir(dest), []);
});

test('unpacking finds damage: a bad header checksum, an archive cut short, a gzip stream cut short', async (t) => {
  const tmp = await tempFolder();
  t.teardown(tmp.cleanup);
  const tar = writeTar([{ name: 'a.bin', data: Buffer.alloc(1500, 7) }]);
  const bad = Buffer.from(tar);
  bad[10] ^= 0xff;
  await t.throwsAsync(unpackArchive(await tarGzFile(tmp.root, 'bad.tar.gz', bad), tmp.root), { message: /header of the archive is damaged/ });
  await t.throwsAsync(unpackArchive(await tarGzFile(tmp.root, 'cut.tar.gz', tar.subarray(0, 1200)), tmp.root), { message: /ends early/ });
  const cutGzip = path.join(tmp.root, 'cut-gzip.tar.gz');
  await writeFile(cutGzip, gzipSync(tar).subarray(0, 40));
  await t.throwsAsync(unpackArchive(cutGzip, tmp.root), { message: /gzip data is damaged or cut short/ });
});

const hasTar = (() => {
  try {
    execFileSync('tar', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
(hasTar ? test : test.skip)('archives made by the system tar unpack (gnu, pax, ustar; long names; empty and 512-byte files)', async (t) => {
  const tmp = await tempFolder();
  t.teardown(tmp.cleanup);
  const src = path.join(tmp.root, 'src');
  const long = `cifar-10-batches-bin/${'deep-folder-name/'.repeat(6)}${'a-long-file-name-'.repeat(5)}.bin`; // > 100 bytes
  const files: Record<string, Buffer> = {
    'cifar-10-batches-bin/data_batch_1.bin': Buffer.alloc(3073 * 3, 5),
    'cifar-10-batches-bin/empty.txt': Buffer.alloc(0),
    'cifar-10-batches-bin/exactly512.bin': Buffer.alloc(512, 1),
    [long]: Buffer.from('long name'),
  };
  for (const [name, data] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(src, name)), { recursive: true });
    await writeFile(path.join(src, name), data);
  }
  for (const format of ['gnu', 'pax', 'ustar']) {
    const archive = path.join(tmp.root, `${format}.tar.gz`);
    // ustar cannot hold the long name in one 100-byte field but can split it into prefix + name.
    execFileSync('tar', [`--format=${format}`, '-czf', archive, '-C', src, 'cifar-10-batches-bin']);
    const dest = path.join(tmp.root, `out-${format}`);
    await mkdir(dest);
    await unpackArchive(archive, dest);
    for (const [name, data] of Object.entries(files)) {
      t.deepEqual(await readFile(path.join(dest, name)), data, `${format}: ${name}`);
    }
  }
});

test('the progress bar draws on a terminal, and writes nothing into a pipe or file', (t) => {
  const written: string[] = [];
  const terminal = Object.assign(new PassThrough(), { isTTY: true, columns: 120, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
  terminal.on('data', (chunk: Buffer) => written.push(chunk.toString()));
  const bar = new ProgressBar('{label} {bar} {percentage}% {value}/{total}', terminal as unknown as NodeJS.WriteStream);
  bar.update(5, 10, { label: 'epoch 1/3' });
  bar.clear();
  t.regex(written.join(''), /epoch 1\/3 .*50% 5\/10/);

  const pipe = Object.assign(new PassThrough(), { isTTY: false });
  let piped = '';
  pipe.on('data', (chunk: Buffer) => (piped += chunk.toString()));
  const quiet = new ProgressBar('{bar}', pipe as unknown as NodeJS.WriteStream);
  quiet.update(5, 10);
  quiet.clear();
  t.is(piped, '');
});

test('the defaults are the official archive and checksum', (t) => {
  t.is(CIFAR10_URL, 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz');
  t.is(CIFAR10_MD5, 'c32a1d4ab5d03f1284b67883e8d87530');
});
