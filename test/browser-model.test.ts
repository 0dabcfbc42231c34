// The saved model.json + weights.bin in a real browser: headless Chromium loads TensorFlow.js's own browser
// bundle and the files over HTTP with tf.loadLayersModel, as a web page would, and predicts what the trainer's
// forward pass predicts for the same images (the tutorial network, and bn-cnn with its batch norm).
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { chromium } from 'playwright-core';
import { saveLayersModel } from '../src/model/layers-model-files.ts';
import { modelByName } from '../src/model/model-registry.ts';
import { initialParameters, parameterSlices } from '../src/model/parameter-vector.ts';
import { SeededRandom } from '../src/random/seeded-random.ts';
import { ROOT } from './fixtures/redis-harness.ts';

const CHROMIUM = '/usr/bin/chromium';
const TFJS_BUNDLE = path.join(ROOT, 'node_modules/@tensorflow/tfjs/dist/tf.min.js');
const IMAGES = 6;

test.before(async () => {
  await tf.setBackend('cpu');
});

/** Serves `dir`'s files and tfjs's browser bundle on 127.0.0.1. */
async function serve(dir: string): Promise<{ base: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const name = (req.url ?? '/').split('?')[0];
    const file = name === '/tf.min.js' ? TFJS_BUNDLE : name === '/' ? '' : path.join(dir, path.basename(name));
    if (name === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><script src="/tf.min.js"></script>');
      return;
    }
    readFile(file).then(
      (bytes) => res.writeHead(200, { 'content-type': name.endsWith('.json') ? 'application/json' : 'application/octet-stream' }).end(bytes),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { base: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

for (const name of ['tutorial', 'bn-cnn']) {
  test.serial(`${name}: model.json loads with tf.loadLayersModel in headless Chromium and predicts what the trainer computes`, async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.fail(`Chromium is not installed at ${CHROMIUM}: this test opens the model in a real browser. Install Debian's package: apt-get install -y chromium (.ci/run does it).`);
      return;
    }
    const model = modelByName(name);
    // Weights a trained run could have: the initial ones, with running statistics away from 0 and 1.
    const weights = initialParameters(model, 3);
    const rng = new SeededRandom(4, 1);
    for (const { spec, offset, size } of parameterSlices(model)) {
      if (spec.kind === 'running-mean') for (let i = 0; i < size; i++) weights[offset + i] = rng.nextFloat() - 0.5;
      if (spec.kind === 'running-variance') for (let i = 0; i < size; i++) weights[offset + i] = 0.5 + rng.nextFloat();
    }
    const dir = await mkdtemp(path.join(os.tmpdir(), 'browser-model-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    await saveLayersModel(dir, model, weights);

    const pixels = new Float32Array(IMAGES * 32 * 32 * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = rng.nextFloat();
    const ours = tf.tidy(() => {
      const params = parameterSlices(model).map(({ spec, offset, size }) => tf.tensor(weights.subarray(offset, offset + size), [...spec.shape]));
      return model.logits(params, tf.tensor4d(pixels, [IMAGES, 32, 32, 3])).dataSync() as Float32Array;
    });

    const server = await serve(dir);
    t.teardown(server.close);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    t.teardown(() => browser.close());
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${server.base}/`, { waitUntil: 'load' });
    const theirs = await page.evaluate(async ({ url, data, n }) => {
      const tfjs = (globalThis as unknown as { tf: typeof tf }).tf;
      await tfjs.setBackend('cpu');
      const loaded = await tfjs.loadLayersModel(url);
      const y = loaded.predict(tfjs.tensor4d(data, [n, 32, 32, 3])) as tf.Tensor;
      return Array.from(await y.data());
    }, { url: `${server.base}/model.json`, data: Array.from(pixels), n: IMAGES });
    t.deepEqual(problems, []);
    t.is(theirs.length, ours.length);
    const worst = Math.max(...theirs.map((v, i) => Math.abs(v - ours[i]) / Math.max(1, Math.abs(ours[i]))));
    t.log(`largest difference: ${worst.toExponential(2)}`);
    t.true(worst < 1e-4, `browser logits within 1e-4 of the trainer's (worst ${worst})`);
    const argmax = (v: ArrayLike<number>, i: number) => Array.from({ length: 10 }, (_, c) => v[i * 10 + c]).reduce((b, x, c, all) => (x > all[b] ? c : b), 0);
    for (let i = 0; i < IMAGES; i++) t.is(argmax(theirs, i), argmax(ours, i), `image ${i}: the same class`);
  });
}
