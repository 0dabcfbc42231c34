import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { writeCifar10Fixture } from './fixtures/cifar10-fixture.ts';
import { loadCifar10 } from '../src/data/cifar10-dataset.ts';
import { ShardComputer } from '../src/compute/shard-computer.ts';
import { saveLayersModel } from '../src/model/layers-model-files.ts';
import { initialParameters, parameterSlices } from '../src/model/parameter-vector.ts';
import { tutorialCnn } from '../src/model/tutorial-cnn.ts';
import { CIFAR10_CLASS_NAMES } from '../src/predict/class-names.ts';
import { applyExifOrientation, jpegExifOrientation } from '../src/predict/exif-orientation.ts';
import { decodeImage } from '../src/predict/decode-image.ts';
import { resizeToInput } from '../src/predict/resize-image.ts';
import { ImageDecodeError } from '../src/errors/index.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');
const WEIGHTS = initialParameters(tutorialCnn, 1);

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function predict(args: string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/predict.ts'), ...args], { cwd: ROOT, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

interface JsonPrediction {
  file: string;
  format: string;
  width: number;
  height: number;
  top: { class: string; index: number; probability: number }[];
  probabilities: number[];
  logits: number[];
  error?: string;
}

function jsonLines(stdout: string): JsonPrediction[] {
  return stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as JsonPrediction);
}

/** A folder with the tutorial model at its initial weights (seed 1 unless told); removed after the test. */
async function modelFolder(t: { teardown(fn: () => Promise<void>): void }, weights = WEIGHTS): Promise<{ root: string; model: string }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'predict-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const model = path.join(root, 'model');
  await saveLayersModel(model, tutorialCnn, weights);
  return { root, model };
}

/** A picture with structure (gradients, stripes, a disc), so different crops and scalings give different inputs. */
function synthetic(width: number, height: number, seed: number): Uint8Array {
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 4;
      const inDisc = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (Math.min(width, height) / 3) ** 2;
      rgba[p] = (x * 255) / (width - 1);
      rgba[p + 1] = inDisc ? 230 : (y * 9 + seed * 31) & 0xff;
      rgba[p + 2] = ((x + y + seed) % 8) * 32;
      rgba[p + 3] = 255;
    }
  }
  return rgba;
}

function pngBytes(width: number, height: number, rgba: Uint8Array): Buffer {
  const png = new PNG({ width, height });
  png.data.set(rgba);
  return PNG.sync.write(png);
}

/** What the test expects the network to see: out[oy][ox] = mean of the source block (computed independently here). */
function blockMeans(rgba: Uint8Array, width: number, x0: number, y0: number, bw: number, bh: number): Float32Array {
  const out = new Float32Array(32 * 32 * 3);
  for (let oy = 0; oy < 32; oy++) {
    for (let ox = 0; ox < 32; ox++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let dy = 0; dy < bh; dy++) for (let dx = 0; dx < bw; dx++) sum += rgba[((y0 + oy * bh + dy) * width + x0 + ox * bw + dx) * 4 + c];
        out[(oy * 32 + ox) * 3 + c] = sum / (bw * bh) / 255;
      }
    }
  }
  return out;
}

async function cpuLogits(input: Float32Array): Promise<Float32Array> {
  await tf.setBackend('cpu');
  return tf.tidy(() => {
    const params = parameterSlices(tutorialCnn).map(({ spec, offset, size }) => tf.tensor(WEIGHTS.subarray(offset, offset + size), [...spec.shape]));
    return tutorialCnn.logits(params, tf.tensor4d(input, [1, 32, 32, 3])).dataSync() as Float32Array;
  });
}

function softmaxOf(logits: ArrayLike<number>): number[] {
  const v = Array.from(logits);
  const exps = v.map((x) => Math.exp(x));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

test('the probabilities printed are the softmax of the logits of the resized image (PNG crop, JPEG, stretch, enlarge)', async (t) => {
  const { root, model } = await modelFolder(t);
  // 96×64 PNG, centred square 64×64 from x = 16: each input pixel is the mean of a 2×2 block.
  const wide = synthetic(96, 64, 1);
  await writeFile(path.join(root, 'wide.png'), pngBytes(96, 64, wide));
  // 64×64 JPEG: what the decoder yields (lossy) is averaged in 2×2 blocks.
  const photo = synthetic(64, 64, 2);
  const jpegFile = jpeg.encode({ width: 64, height: 64, data: photo }, 85).data;
  await writeFile(path.join(root, 'photo.jpg'), jpegFile);
  const decoded = jpeg.decode(jpegFile, { useTArray: true, formatAsRGBA: true }).data;
  // 64×32 PNG, stretched: each input pixel is the mean of a 2×1 block.
  const flat = synthetic(64, 32, 3);
  await writeFile(path.join(root, 'flat.png'), pngBytes(64, 32, flat));
  // 16×16 PNG: enlarged, every source pixel becomes a 2×2 block of input pixels.
  const tiny = synthetic(16, 16, 4);
  await writeFile(path.join(root, 'tiny.png'), pngBytes(16, 16, tiny));
  const enlarged = new Float32Array(32 * 32 * 3);
  for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) for (let c = 0; c < 3; c++) enlarged[(y * 32 + x) * 3 + c] = tiny[((y >> 1) * 16 + (x >> 1)) * 4 + c] / 255;

  const cases = [
    { file: 'wide.png', fit: 'crop', expected: blockMeans(wide, 96, 16, 0, 2, 2) },
    { file: 'photo.jpg', fit: 'crop', expected: blockMeans(decoded, 64, 0, 0, 2, 2) },
    { file: 'flat.png', fit: 'stretch', expected: blockMeans(flat, 64, 0, 0, 2, 1) },
    { file: 'tiny.png', fit: 'crop', expected: enlarged },
  ];
  // One run per --fit, all its files at once.
  const predictions = new Map<string, JsonPrediction>();
  for (const fit of ['crop', 'stretch']) {
    const files = cases.filter((c) => c.fit === fit).map((c) => path.join(root, c.file));
    const result = await predict([...files, '--model', model, '--backend', 'cpu', '--fit', fit, '--json']);
    t.is(result.code, 0, result.stderr);
    for (const p of jsonLines(result.stdout)) predictions.set(path.basename(p.file), p);
  }
  for (const c of cases) {
    const got = predictions.get(c.file)!;
    const want = softmaxOf(await cpuLogits(c.expected));
    got.probabilities.forEach((p, k) => t.true(Math.abs(p - want[k]) < 1e-6, `${c.file} class ${k}: ${p} vs ${want[k]}`));
    const best = want.indexOf(Math.max(...want));
    t.is(got.top[0].index, best, c.file);
    t.is(got.top.length, 3);
  }

  // The text output (default backend, default --top 3): three lines per file, the same figures to 2 decimals.
  const text = await predict([path.join(root, 'wide.png'), '--model', model]);
  t.is(text.code, 0, text.stderr);
  const want = softmaxOf(await cpuLogits(cases[0].expected));
  const ranked = want.map((p, i) => ({ p, i })).sort((a, b) => b.p - a.p).slice(0, 3);
  const lines = text.stdout.trim().split('\n');
  t.regex(lines[1], /wide\.png {2}\(PNG 96×64, centre 64×64\)$/);
  t.is(lines.length, 2 + 3, text.stdout);
  ranked.forEach(({ p, i }, k) => {
    const [name, percent] = lines[2 + k].trim().split(/\s+/);
    t.is(name, CIFAR10_CLASS_NAMES[i]);
    t.true(Math.abs(Number(percent.replace('%', '')) - p * 100) <= 0.0051, `${name}: printed ${percent}, softmax ${p}`);
  });

  const five = await predict([path.join(root, 'wide.png'), '--model', model, '--top', '5']);
  t.is(five.stdout.trim().split('\n').length, 2 + 5);
  const zero = await predict([path.join(root, 'wide.png'), '--model', model, '--top', '0']);
  t.is(zero.code, 2, "a usage error");
  t.regex(zero.stderr, /--top must be a whole number ≥ 1/);
});

test('a 32×32 PNG of a test image gets the prediction (and loss) that evaluating that test image gives', async (t) => {
  // Seed 2's initial weights: on the fixture's images they answer four different classes (seed 1's answer one).
  const weights = initialParameters(tutorialCnn, 2);
  const { root, model } = await modelFolder(t, weights);
  const fixture = await writeCifar10Fixture({ perFile: 1, testCount: 24 });
  t.teardown(() => fixture.cleanup());
  const dataset = await loadCifar10(fixture.dir);
  const files: string[] = [];
  for (let i = 0; i < dataset.test.count; i++) {
    const rgba = new Uint8Array(32 * 32 * 4);
    for (let p = 0; p < 1024; p++) {
      rgba.set(dataset.test.images.subarray(i * 3072 + p * 3, i * 3072 + p * 3 + 3), p * 4);
      rgba[p * 4 + 3] = 255;
    }
    files.push(path.join(root, `test-${i}.png`));
    await writeFile(files[i], pngBytes(32, 32, rgba));
  }
  const computer = await ShardComputer.create(tutorialCnn, dataset, 'cpu');
  computer.setWeights(weights);
  const evaluated = computer.evaluate(0, dataset.test.count);
  computer.dispose();

  const result = await predict([...files, '--model', model, '--backend', 'cpu', '--json']);
  t.is(result.code, 0, result.stderr);
  const got = jsonLines(result.stdout);
  t.is(got.length, files.length);
  let lossSum = 0;
  got.forEach((g, i) => {
    t.is(g.file, files[i]);
    t.is(g.top[0].index, evaluated.predictions[i], `test image ${i}`);
    lossSum += -Math.log(softmaxOf(g.logits)[dataset.test.labels[i]]);
  });
  t.true(Math.abs(lossSum - evaluated.lossSum) < 1e-4, `loss over the PNGs ${lossSum} vs evaluation ${evaluated.lossSum}`);
  t.true(new Set(evaluated.predictions).size > 1, 'the images get different answers, so agreeing means something');
});

test('unreadable and unsupported files get one line each; the good ones are still classified; exit code 1', async (t) => {
  const { root, model } = await modelFolder(t);
  const good = path.join(root, 'good.png');
  const goodBytes = pngBytes(40, 40, synthetic(40, 40, 5));
  await writeFile(good, goodBytes);
  const text = path.join(root, 'x.png');
  await writeFile(text, 'this is not a picture\n');
  const truncated = path.join(root, 'cut.png');
  await writeFile(truncated, goodBytes.subarray(0, 60));
  const missing = path.join(root, 'missing.png');
  const good2 = path.join(root, 'good.jpg');
  await writeFile(good2, jpeg.encode({ width: 50, height: 30, data: synthetic(50, 30, 6) }, 90).data);

  const result = await predict([text, good, missing, truncated, good2, '--model', model]);
  t.is(result.code, 1);
  const errors = result.stderr.trim().split('\n');
  t.deepEqual(errors, [
    `Error: ${text} is neither a PNG nor a JPEG image (it starts with "this is "); predict reads PNG and JPEG files.`,
    `Error: ${missing} does not exist.`,
    `Error: ${truncated} looks like a PNG file but cannot be decoded: the file ends before its image data does (it is truncated, e.g. an incomplete download or copy).`,
    '3 of 5 files could not be classified.',
  ]);
  const out = result.stdout.trim().split('\n');
  t.is(out.length, 1 + 2 * 4, result.stdout);
  t.regex(out[1], /good\.png {2}\(PNG 40×40\)$/);
  t.regex(out[5], /good\.jpg {2}\(JPEG 50×30, centre 30×30\)$/);

  const noModel = await predict([good, '--model', path.join(root, 'nowhere')]);
  t.is(noModel.code, 1);
  t.regex(noModel.stderr, /nowhere\/model\.json does not exist/);
  t.notRegex(noModel.stderr, /\n\s+at /);
  const none = await predict(['--model', model]);
  t.is(none.code, 2, "a usage error");
  t.regex(none.stderr, /Name at least one PNG or JPEG file/);
});

test('decodeImage: format by content, not by name; errors name the file', (t) => {
  const rgba = synthetic(5, 3, 7);
  const png = decodeImage(pngBytes(5, 3, rgba), 'a.jpg');
  t.is(png.format, 'PNG');
  t.deepEqual([...png.rgba], [...rgba]);
  const jpg = decodeImage(jpeg.encode({ width: 5, height: 3, data: rgba }, 90).data, 'b.png');
  t.is(jpg.format, 'JPEG');
  t.is(jpg.width, 5);
  t.throws(() => decodeImage(new Uint8Array(0), 'empty.png'), { instanceOf: ImageDecodeError, message: 'empty.png is empty; predict reads PNG and JPEG files.' });
  t.throws(() => decodeImage(Buffer.from('GIF89a...'), 'c.gif'), { instanceOf: ImageDecodeError, message: /^c\.gif is neither a PNG nor a JPEG image/ });
});

test('resizeToInput: 32×32 passes through exactly, one colour stays that colour at any size, transparency is white', (t) => {
  const rgba = synthetic(32, 32, 8);
  const same = resizeToInput({ format: 'PNG', width: 32, height: 32, rgba }, 32, 'crop');
  for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) t.is(same[p * 3 + c], Math.fround(rgba[p * 4 + c] / 255));
  const odd = new Uint8Array(77 * 45 * 4).map((_, i) => [200, 100, 50, 255][i % 4]);
  for (const fit of ['crop', 'stretch'] as const) {
    const out = resizeToInput({ format: 'PNG', width: 77, height: 45, rgba: odd }, 32, fit);
    t.true(out.every((v, k) => Math.abs(v - [200, 100, 50][k % 3] / 255) < 1e-6), fit);
  }
  const clear = resizeToInput({ format: 'PNG', width: 8, height: 8, rgba: new Uint8Array(8 * 8 * 4) }, 32, 'crop');
  t.true(clear.every((v) => v === 1));
});

test('JPEG EXIF orientation: read from the APP1 segment and applied, so a camera photo is seen upright', async (t) => {
  // A 3×2 image, pixels numbered 0..5 in the red channel.
  const image = { width: 3, height: 2, rgba: new Uint8Array(24).map((_, i) => (i % 4 === 0 ? i / 4 : 255)) };
  const red = (img: { rgba: Uint8Array }) => [...img.rgba].filter((_, i) => i % 4 === 0);
  const cw = applyExifOrientation(image, 6);
  t.deepEqual([cw.width, cw.height], [2, 3]);
  t.deepEqual(red(cw), [3, 0, 4, 1, 5, 2]); // turned 90° clockwise
  t.deepEqual(red(applyExifOrientation(image, 8)), [2, 5, 1, 4, 0, 3]);
  t.deepEqual(red(applyExifOrientation(image, 3)), [5, 4, 3, 2, 1, 0]);
  t.deepEqual(red(applyExifOrientation(image, 2)), [2, 1, 0, 5, 4, 3]);

  // A real JPEG with an EXIF segment saying "turn 90° clockwise" (big-endian TIFF, one IFD entry).
  const { root, model } = await modelFolder(t);
  const base = jpeg.encode({ width: 48, height: 32, data: synthetic(48, 32, 9) }, 90).data;
  const tiff = Buffer.from([0x4d, 0x4d, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]);
  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
  const app1 = Buffer.concat([Buffer.from([0xff, 0xe1, (payload.length + 2) >> 8, (payload.length + 2) & 0xff]), payload]);
  const rotatedFile = Buffer.concat([base.subarray(0, 2), app1, base.subarray(2)]);
  t.is(jpegExifOrientation(rotatedFile), 6);
  t.is(jpegExifOrientation(base), 1);
  await writeFile(path.join(root, 'camera.jpg'), rotatedFile);
  // The same picture turned by the test and saved as PNG must classify identically.
  const seen = applyExifOrientation({ width: 48, height: 32, rgba: jpeg.decode(base, { useTArray: true, formatAsRGBA: true }).data }, 6);
  await writeFile(path.join(root, 'upright.png'), pngBytes(seen.width, seen.height, seen.rgba));
  const result = await predict([path.join(root, 'camera.jpg'), path.join(root, 'upright.png'), '--model', model, '--backend', 'cpu', '--json']);
  t.is(result.code, 0, result.stderr);
  const [camera, upright] = jsonLines(result.stdout);
  t.deepEqual([camera.width, camera.height], [32, 48]);
  t.deepEqual(camera.logits, upright.logits);
});
