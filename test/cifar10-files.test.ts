import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IMAGE_BYTES, loadCifar10 } from '../src/data/cifar10-dataset.ts';
import { CIFAR10_FILES, RECORD_BYTES, parseMeta, recordsToNhwc } from '../src/data/cifar10-files.ts';
import { DEFAULT_DATA_DIR, resolveDataDir } from '../src/data/data-dir.ts';
import { fillImageBatch, fillImageRange } from '../src/data/image-batch.ts';
import { DatasetError, InvalidOptionError } from '../src/errors/index.ts';
import {
  FIXTURE_CLASS_NAMES,
  TEST_FILE_INDEX,
  fixtureFileBytes,
  fixtureLabel,
  fixturePixel,
  readFixtureByte,
  removeFixtureFile,
  setFixtureByte,
  setFixtureLabel,
  truncateFixtureFile,
  writeCifar10Fixture,
  writeFixtureMeta,
} from './fixtures/cifar10-fixture.ts';

/** Pixel (y, x) channel c of image i in an NHWC byte array. */
const at = (i: number, y: number, x: number, c: number) => i * IMAGE_BYTES + (y * 32 + x) * 3 + c;

test('fixture round trip: labels, NHWC pixel positions, class names, shared memory', async (t) => {
  const fx = await writeCifar10Fixture({ perFile: 3, testCount: 5 });
  t.teardown(fx.cleanup);
  const ds = await loadCifar10(fx.dir);
  t.is(ds.dir, fx.dir);
  t.deepEqual([...ds.classNames], [...FIXTURE_CLASS_NAMES]);
  t.is(ds.train.count, 15);
  t.is(ds.test.count, 5);
  t.is(ds.train.images.length, 15 * 3072);
  t.is(ds.train.labels.length, 15);
  t.is(ds.test.images.length, 5 * 3072);
  for (const set of [ds.train, ds.test]) {
    t.true(set.images.buffer instanceof SharedArrayBuffer);
    t.true(set.labels.buffer instanceof SharedArrayBuffer);
  }
  // Every pixel of every image, against the fixture's formula; train image i is record i % 3 of file ⌊i/3⌋.
  let wrong = 0;
  for (let i = 0; i < 15; i++) {
    const f = Math.floor(i / 3);
    const r = i % 3;
    if (ds.train.labels[i] !== fixtureLabel(f, r)) wrong++;
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32; x++)
        for (let c = 0; c < 3; c++) if (ds.train.images[at(i, y, x, c)] !== fixturePixel(f, r, y, x, c)) wrong++;
  }
  for (let i = 0; i < 5; i++) {
    if (ds.test.labels[i] !== fixtureLabel(TEST_FILE_INDEX, i)) wrong++;
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32; x++)
        for (let c = 0; c < 3; c++)
          if (ds.test.images[at(i, y, x, c)] !== fixturePixel(TEST_FILE_INDEX, i, y, x, c)) wrong++;
  }
  t.is(wrong, 0);
  // Spot checks written out by hand, so a mistake in the formula and the loader together cannot hide:
  // image 4 = file 1 record 1; pixel (y=2, x=5): red = 53+29+14+15+0+10 = 121, green +101 = 222, blue +202 = 323 & 255 = 67.
  t.is(ds.train.images[at(4, 2, 5, 0)], 121);
  t.is(ds.train.images[at(4, 2, 5, 1)], 222);
  t.is(ds.train.images[at(4, 2, 5, 2)], 67);
  t.is(ds.train.labels[4], (7 + 3) % 10);
});

test('the raw file layout: record r is bytes r*3073.., label first, then the red plane row by row', async (t) => {
  const fx = await writeCifar10Fixture({ perFile: 2 });
  t.teardown(fx.cleanup);
  // record 1 of data_batch_2: label at 3073, red (y=0,x=1) at 3073+1+1, blue (y=31,x=31) at 3073+1+2048+1023
  t.is(await readFixtureByte(fx.dir, 'data_batch_2.bin', 3073), fixtureLabel(1, 1));
  t.is(await readFixtureByte(fx.dir, 'data_batch_2.bin', 3075), fixturePixel(1, 1, 0, 1, 0));
  t.is(await readFixtureByte(fx.dir, 'data_batch_2.bin', 3073 + 1 + 2048 + 1023), fixturePixel(1, 1, 31, 31, 2));
});

test('recordsToNhwc: the word-at-a-time path and the byte path give the same bytes', (t) => {
  const src = fixtureFileBytes(2, 3);
  const aligned = new Uint8Array(3 * 3072);
  const labelsA = new Uint8Array(3);
  recordsToNhwc(src, 0, 3, aligned, labelsA, 0);
  const backing = new Uint8Array(3 * 3072 + 1);
  const unaligned = backing.subarray(1); // byteOffset 1 forces the byte-by-byte path
  const labelsB = new Uint8Array(3);
  recordsToNhwc(src, 0, 3, unaligned, labelsB, 0);
  t.deepEqual(Buffer.from(unaligned), Buffer.from(aligned));
  t.deepEqual([...labelsB], [...labelsA]);
  t.is(aligned[at(2, 31, 30, 1)], fixturePixel(2, 2, 31, 30, 1));
});

test('fillImageBatch writes x/255 NHWC for the chosen images; fillImageRange for a run of them', async (t) => {
  const fx = await writeCifar10Fixture({ perFile: 2 });
  t.teardown(fx.cleanup);
  const ds = await loadCifar10(fx.dir);
  const out = new Float32Array(4 * 3072).fill(-1);
  const batch = fillImageBatch(ds.train, [7, 0, 7], out);
  t.is(batch.length, 3 * 3072);
  t.is(batch.buffer, out.buffer);
  // image 7 = file 3 record 1
  for (const [y, x, c] of [[0, 0, 0], [13, 29, 2], [31, 31, 1]]) {
    t.is(batch[(y * 32 + x) * 3 + c], Math.fround(fixturePixel(3, 1, y, x, c) / 255));
    t.is(batch[3072 + (y * 32 + x) * 3 + c], Math.fround(fixturePixel(0, 0, y, x, c) / 255));
    t.is(batch[2 * 3072 + (y * 32 + x) * 3 + c], Math.fround(fixturePixel(3, 1, y, x, c) / 255));
  }
  t.is(out[3 * 3072], -1, 'nothing written past the batch');
  t.true(batch.every((v) => v >= 0 && v <= 1));

  const range = fillImageRange(ds.train, 6, 8, new Float32Array(2 * 3072));
  const same = fillImageBatch(ds.train, [6, 7], new Float32Array(2 * 3072));
  t.deepEqual(range, same);
  t.is(fillImageRange(ds.train, 3, 3, new Float32Array(0)).length, 0);

  t.throws(() => fillImageBatch(ds.train, [0, 1], new Float32Array(3072)), { instanceOf: RangeError });
  t.throws(() => fillImageBatch(ds.train, [10], out), { instanceOf: RangeError });
  t.throws(() => fillImageRange(ds.train, 9, 11, out), { instanceOf: RangeError });
});

test('limits keep the first N images, across file boundaries; bad limits are clear errors', async (t) => {
  const fx = await writeCifar10Fixture({ perFile: 3, testCount: 4 });
  t.teardown(fx.cleanup);
  const full = await loadCifar10(fx.dir);
  const ds = await loadCifar10(fx.dir, { trainLimit: 7, testLimit: 2 });
  t.is(ds.train.count, 7);
  t.is(ds.test.count, 2);
  t.is(ds.train.images.length, 7 * 3072);
  t.deepEqual(Buffer.from(ds.train.images), Buffer.from(full.train.images.subarray(0, 7 * 3072)));
  t.deepEqual([...ds.train.labels], [...full.train.labels.subarray(0, 7)]);
  t.deepEqual(Buffer.from(ds.test.images), Buffer.from(full.test.images.subarray(0, 2 * 3072)));
  t.is(ds.fingerprint, full.fingerprint, 'the fingerprint ignores limits');
  t.is((await loadCifar10(fx.dir, { trainLimit: 15, testLimit: 4 })).train.count, 15);

  const tooMany = await t.throwsAsync(loadCifar10(fx.dir, { trainLimit: 16 }), { instanceOf: DatasetError });
  t.regex(tooMany!.message, /--train-limit 16.*15/);
  const tooManyTest = await t.throwsAsync(loadCifar10(fx.dir, { testLimit: 5 }), { instanceOf: DatasetError });
  t.regex(tooManyTest!.message, /--test-limit 5.*4/);
  for (const bad of [0, -3, 2.5, Number.NaN]) {
    await t.throwsAsync(loadCifar10(fx.dir, { trainLimit: bad }), { instanceOf: InvalidOptionError, message: /--train-limit/ });
  }
});

test('pixels: false keeps the labels, counts and fingerprint of a full load, and no pixels', async (t) => {
  const fx = await writeCifar10Fixture({ perFile: 3, testCount: 4 });
  t.teardown(fx.cleanup);
  const full = await loadCifar10(fx.dir);
  const lean = await loadCifar10(fx.dir, { pixels: false, trainLimit: 11 });
  t.is(lean.train.count, 11);
  t.is(lean.test.count, 4);
  t.is(lean.train.images.length, 0);
  t.is(lean.test.images.length, 0);
  t.deepEqual([...lean.train.labels], [...full.train.labels.subarray(0, 11)]);
  t.deepEqual([...lean.test.labels], [...full.test.labels]);
  t.true(new Set(full.train.labels).size > 1, 'the fixture has several labels, so the comparison means something');
  t.is(lean.fingerprint, full.fingerprint);
  t.deepEqual(lean.classNames, full.classNames);
  // Bad data is still refused without pixels.
  await truncateFixtureFile(fx.dir, 'data_batch_3.bin', 5);
  await t.throwsAsync(loadCifar10(fx.dir, { pixels: false }), { instanceOf: DatasetError, message: /data_batch_3\.bin is truncated/ });
});

test('a missing file is a DatasetError naming it and saying what to do', async (t) => {
  for (const name of CIFAR10_FILES) {
    const fx = await writeCifar10Fixture({ perFile: 1 });
    t.teardown(fx.cleanup);
    await removeFixtureFile(fx.dir, name);
    const err = await t.throwsAsync(loadCifar10(fx.dir), { instanceOf: DatasetError });
    t.true(err!.message.includes(path.join(fx.dir, name)), err!.message);
    t.regex(err!.message, /missing/);
    t.regex(err!.message, /--data \/ CIFAR10_DIR/);
  }
  const err = await t.throwsAsync(loadCifar10('/nonexistent/cifar'), { instanceOf: DatasetError });
  t.regex(err!.message, /\/nonexistent\/cifar\/data_batch_1\.bin is missing \(the folder \/nonexistent\/cifar itself does not exist\)/);
});

test('a truncated, empty or overlong file is a DatasetError naming it', async (t) => {
  const fx = await writeCifar10Fixture({ perFile: 2 });
  t.teardown(fx.cleanup);
  await truncateFixtureFile(fx.dir, 'data_batch_3.bin', 1);
  const err = await t.throwsAsync(loadCifar10(fx.dir), { instanceOf: DatasetError });
  t.true(err!.message.includes(path.join(fx.dir, 'data_batch_3.bin')));
  t.regex(err!.message, /truncated/);
  t.regex(err!.message, /6145 bytes are not a whole number of 3073-byte records/);

  const fx2 = await writeCifar10Fixture({ perFile: 2 });
  t.teardown(fx2.cleanup);
  await truncateFixtureFile(fx2.dir, 'test_batch.bin', 2 * RECORD_BYTES);
  const empty = await t.throwsAsync(loadCifar10(fx2.dir), { instanceOf: DatasetError });
  t.regex(empty!.message, /test_batch\.bin is empty/);

  const fx3 = await writeCifar10Fixture({ perFile: 2 });
  t.teardown(fx3.cleanup);
  await setFixtureByte(fx3.dir, 'data_batch_1.bin', 2 * RECORD_BYTES, 0); // one byte too many
  await t.throwsAsync(loadCifar10(fx3.dir), { instanceOf: DatasetError, message: /data_batch_1\.bin is truncated/ });
});

test('training files of different lengths are a DatasetError', async (t) => {
  const fx = await writeCifar10Fixture({ perFile: 2 });
  t.teardown(fx.cleanup);
  await truncateFixtureFile(fx.dir, 'data_batch_4.bin', RECORD_BYTES);
  const err = await t.throwsAsync(loadCifar10(fx.dir), { instanceOf: DatasetError });
  t.regex(err!.message, /data_batch_4\.bin holds 1 records but .*data_batch_1\.bin holds 2/);
});

test('a label outside 0–9 is a DatasetError naming the file and record', async (t) => {
  for (const [name, record, label] of [['data_batch_5.bin', 1, 10], ['test_batch.bin', 0, 255]] as const) {
    const fx = await writeCifar10Fixture({ perFile: 2 });
    t.teardown(fx.cleanup);
    await setFixtureLabel(fx.dir, name, record, label);
    const err = await t.throwsAsync(loadCifar10(fx.dir), { instanceOf: DatasetError });
    t.true(err!.message.includes(path.join(fx.dir, name)), err!.message);
    t.true(err!.message.includes(`record ${record} (byte offset ${record * RECORD_BYTES}) has label ${label}`), err!.message);
  }
  // label 9 is fine
  const fx = await writeCifar10Fixture({ perFile: 2 });
  t.teardown(fx.cleanup);
  await setFixtureLabel(fx.dir, 'data_batch_1.bin', 0, 9);
  t.is((await loadCifar10(fx.dir)).train.labels[0], 9);
});

test('a meta file without ten non-empty names is a DatasetError naming it', async (t) => {
  const names = [...FIXTURE_CLASS_NAMES];
  const bad = [
    names.slice(0, 9).join('\n'),
    [...names, 'extra'].join('\n'),
    [...names.slice(0, 4), '', ...names.slice(4)].join('\n'),
    [...names.slice(0, 4), '   ', ...names.slice(5)].join('\n'),
    '',
  ];
  for (const text of bad) {
    const fx = await writeCifar10Fixture({ perFile: 1 });
    t.teardown(fx.cleanup);
    await writeFixtureMeta(fx.dir, text);
    const err = await t.throwsAsync(loadCifar10(fx.dir), { instanceOf: DatasetError }, JSON.stringify(text));
    t.true(err!.message.includes(path.join(fx.dir, 'batches.meta.txt')));
    t.regex(err!.message, /10 non-empty class names/);
  }
  // CRLF line ends, trailing blank lines and no final newline are all fine
  t.deepEqual(parseMeta(Buffer.from(names.join('\r\n') + '\r\n\r\n'), 'm', 'd'), names);
  t.deepEqual(parseMeta(Buffer.from(names.join('\n')), 'm', 'd'), names);
});

test('fingerprint: SHA-256 of the files concatenated in fixed order; stable, and changes with any byte', async (t) => {
  const fx = await writeCifar10Fixture({ perFile: 2 });
  t.teardown(fx.cleanup);
  const a = await loadCifar10(fx.dir);
  const b = await loadCifar10(fx.dir);
  t.regex(a.fingerprint, /^[0-9a-f]{64}$/);
  t.is(a.fingerprint, b.fingerprint);
  const hash = createHash('sha256');
  for (const name of CIFAR10_FILES) hash.update(await readFile(path.join(fx.dir, name)));
  t.is(a.fingerprint, hash.digest('hex'));

  // A pixel byte in the last test record changes it, even though a --test-limit 1 load never looks at that record.
  const offset = 2 * RECORD_BYTES - 5;
  const old = await readFixtureByte(fx.dir, 'test_batch.bin', offset);
  await setFixtureByte(fx.dir, 'test_batch.bin', offset, old ^ 1);
  const c = await loadCifar10(fx.dir, { testLimit: 1 });
  t.not(c.fingerprint, a.fingerprint);
  await setFixtureByte(fx.dir, 'test_batch.bin', offset, old);
  t.is((await loadCifar10(fx.dir)).fingerprint, a.fingerprint);
  // So does the meta file.
  await writeFixtureMeta(fx.dir, FIXTURE_CLASS_NAMES.join('\n') + '\n');
  t.not((await loadCifar10(fx.dir)).fingerprint, a.fingerprint);
});

test('resolveDataDir: --data, else CIFAR10_DIR, else data/cifar-10-batches-bin, resolved against the cwd', (t) => {
  t.is(resolveDataDir('/x/y', { CIFAR10_DIR: '/env' }), '/x/y');
  t.is(resolveDataDir('rel', { CIFAR10_DIR: '/env' }), path.resolve('rel'));
  t.is(resolveDataDir(undefined, { CIFAR10_DIR: '/env' }), '/env');
  t.is(resolveDataDir('', { CIFAR10_DIR: '/env' }), '/env');
  t.is(resolveDataDir(undefined, {}), path.resolve(DEFAULT_DATA_DIR));
  t.is(resolveDataDir(undefined, { CIFAR10_DIR: '' }), path.resolve('data/cifar-10-batches-bin'));
});

const REAL_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared/cifar-10-batches-bin');
const realTest = existsSync(path.join(REAL_DIR, 'test_batch.bin')) ? test : test.skip;

realTest('the real data set loads: 50,000 / 10,000 images, 1,000 test images per class, the class names', async (t) => {
  const started = performance.now();
  const ds = await loadCifar10(REAL_DIR);
  t.log(`loaded ${REAL_DIR} in ${(performance.now() - started).toFixed(0)} ms`);
  t.is(ds.train.count, 50_000);
  t.is(ds.test.count, 10_000);
  t.deepEqual([...ds.classNames], ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']);
  const testPerClass = new Array(10).fill(0);
  for (const l of ds.test.labels) testPerClass[l]++;
  t.deepEqual(testPerClass, new Array(10).fill(1000));
  const trainPerClass = new Array(10).fill(0);
  for (const l of ds.train.labels) trainPerClass[l]++;
  t.deepEqual(trainPerClass, new Array(10).fill(5000));
  // The SHA-256 of `cat data_batch_{1..5}.bin test_batch.bin batches.meta.txt` for this copy.
  t.is(ds.fingerprint, '7e88e3a6174c527ce317ebf13d73068904c3e5361295753c25096ebd35ea71c3');
  // First training image, first pixel, against the raw file: bytes 1, 1025, 2049 of data_batch_1.bin.
  const raw = await readFile(path.join(REAL_DIR, 'data_batch_1.bin'));
  t.deepEqual([...ds.train.images.subarray(0, 3)], [raw[1], raw[1025], raw[2049]]);
  t.is(ds.train.labels[0], raw[0]);
  // Last test image, bottom-right pixel.
  const rawTest = await readFile(path.join(REAL_DIR, 'test_batch.bin'));
  const last = 9999 * RECORD_BYTES;
  t.deepEqual(
    [...ds.test.images.subarray(10_000 * 3072 - 3)],
    [rawTest[last + 1024], rawTest[last + 2048], rawTest[last + 3072]],
  );
});
