import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { chromium, type Browser } from 'playwright-core';
import { PNG } from 'pngjs';
import { FIXTURE_CLASS_NAMES, TEST_FILE_INDEX, fixtureLabel, fixturePixel, writeCifar10Fixture } from './fixtures/cifar10-fixture.ts';
import { encodePngRgb } from '../src/report/png-encode.ts';
import { parseEvaluation, parseMetricsJsonl } from '../src/report/report-data.ts';
import { ReportDataError } from '../src/errors/index.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');
const CHROMIUM = '/usr/bin/chromium';

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(script: string, args: string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli', script), ...args], {
      cwd: ROOT, env: { ...process.env, CIFAR10_DIR: '' }, maxBuffer: 64 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function tempDir(t: { teardown(fn: () => Promise<void>): void }, prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const TEST_COUNT = 40;
const EPOCHS = 6;
/** Epochs that were followed by a test evaluation (as --eval-every 2 would give, plus none for the others). */
const TESTED_EPOCHS = [2, 4, 6];

/** A made-up classifier's answer for test image i: right for most, off by one class for every third. */
function predictedFor(i: number): number {
  const label = fixtureLabel(TEST_FILE_INDEX, i);
  return i % 3 === 0 ? (label + 1 + (i % 4)) % 10 : label;
}

/** Writes metrics.jsonl and eval.json as training would, for the fixture's test set. */
async function writeRunFolder(dir: string): Promise<{ confusion: number[][]; misclassified: { index: number; label: number; predicted: number }[] }> {
  const lines: string[] = [];
  for (let epoch = 1; epoch <= EPOCHS; epoch++) {
    const tested = TESTED_EPOCHS.includes(epoch);
    lines.push(JSON.stringify({
      epoch, loss: 2.3 / epoch, acc: Math.min(0.95, 0.1 + 0.12 * epoch), time: 10 + epoch, imagesPerSecond: 2000 + epoch,
      globalStep: epoch * 5000, workers: '2 local worker threads (wasm)',
      ...(tested ? { testLoss: 2.0 / epoch + 0.3, testAcc: 0.1 + 0.08 * epoch } : {}), timestamp: `2025-01-0${epoch}T10:00:00.000Z`,
    }));
  }
  await writeFile(path.join(dir, 'metrics.jsonl'), lines.join('\n') + '\n');
  const confusion = Array.from({ length: 10 }, () => new Array<number>(10).fill(0));
  const misclassified: { index: number; label: number; predicted: number }[] = [];
  for (let i = 0; i < TEST_COUNT; i++) {
    const label = fixtureLabel(TEST_FILE_INDEX, i);
    const predicted = predictedFor(i);
    confusion[label][predicted] += 1;
    if (label !== predicted) misclassified.push({ index: i, label, predicted });
  }
  const correct = TEST_COUNT - misclassified.length;
  const perClassAccuracy = confusion.map((row, c) => row[c] / row.reduce((a, b) => a + b, 0));
  await writeFile(path.join(dir, 'eval.json'), JSON.stringify({
    images: TEST_COUNT, accuracy: correct / TEST_COUNT, loss: 1.234, classNames: FIXTURE_CLASS_NAMES, perClassAccuracy, confusion,
    misclassified, seconds: 0.5,
  }, null, 2));
  return { confusion, misclassified };
}

// ---- the thumbnails' PNG, read back ----

test('encodePngRgb writes an RGB PNG that decodes to the same pixels', (t) => {
  const width = 7;
  const height = 5;
  const rgb = new Uint8Array(width * height * 3).map((_, i) => (i * 37 + 11) & 0xff);
  const png = PNG.sync.read(encodePngRgb(width, height, rgb));
  t.is(png.width, width);
  t.is(png.height, height);
  for (let p = 0; p < width * height; p++) {
    t.deepEqual([...png.data.subarray(p * 4, p * 4 + 3)], [...rgb.subarray(p * 3, p * 3 + 3)], `pixel ${p}`);
    t.is(png.data[p * 4 + 3], 255);
  }
  t.throws(() => encodePngRgb(2, 2, new Uint8Array(11)), { instanceOf: RangeError });
});

// ---- reading the run's files ----

test('metrics.jsonl: epochs in order, a repeated epoch keeps its last line, blank lines ignored', (t) => {
  const line = (epoch: number, loss: number) => JSON.stringify({ epoch, loss, acc: 0.5, time: 1, imagesPerSecond: 1 });
  const epochs = parseMetricsJsonl('m.jsonl', `${line(2, 1.5)}\n\n${line(1, 2)}\n${line(2, 1.25)}\n`);
  t.deepEqual(epochs.map((e) => [e.epoch, e.loss]), [[1, 2], [2, 1.25]]);
});

test('metrics.jsonl and eval.json: damage is reported with the file, the line and the field', (t) => {
  const good = JSON.stringify({ epoch: 1, loss: 2, acc: 0.5, time: 1, imagesPerSecond: 1 });
  t.throws(() => parseMetricsJsonl('m.jsonl', `${good}\n{"epoch": 2, "loss":`), { instanceOf: ReportDataError, message: /m\.jsonl line 2 is not valid JSON/ });
  t.throws(() => parseMetricsJsonl('m.jsonl', `${good}\n${JSON.stringify({ epoch: 2, loss: 'x', acc: 0.5, time: 1, imagesPerSecond: 1 })}`), {
    instanceOf: ReportDataError, message: /line 2: "loss" must be a finite number/,
  });
  t.throws(() => parseMetricsJsonl('m.jsonl', '\n'), { instanceOf: ReportDataError, message: /holds no epochs/ });
  const evaluation = {
    images: 2, accuracy: 0.5, loss: 1, classNames: ['a', 'b'], perClassAccuracy: [1, 0], confusion: [[1, 0], [1, 0]],
    misclassified: [{ index: 1, label: 1, predicted: 0 }], seconds: 1,
  };
  t.is(parseEvaluation('e.json', JSON.stringify(evaluation)).accuracy, 0.5);
  t.throws(() => parseEvaluation('e.json', JSON.stringify({ ...evaluation, confusion: [[1, 0]] })), { instanceOf: ReportDataError, message: /"confusion" must be a 2×2 matrix/ });
  t.throws(() => parseEvaluation('e.json', JSON.stringify({ ...evaluation, misclassified: [{ index: 5, label: 1, predicted: 0 }] })), {
    instanceOf: ReportDataError, message: /"misclassified"/,
  });
  t.throws(() => parseEvaluation('e.json', '{'), { instanceOf: ReportDataError, message: /e\.json is not valid JSON/ });
});

// ---- the command ----

test('npm run report: a missing eval.json or a corrupt metrics.jsonl is one clear line, no stack trace', async (t) => {
  const dir = await tempDir(t, 'report-errors-');
  const none = await cli('report.ts', ['--model', dir, '--no-images']);
  t.is(none.code, 1);
  t.regex(none.stderr, /Error: .*metrics\.jsonl does not exist/);
  t.notRegex(none.stderr, /\n\s+at /);

  await writeFile(path.join(dir, 'metrics.jsonl'), JSON.stringify({ epoch: 1, loss: 2, acc: 0.2, time: 3, imagesPerSecond: 9 }) + '\n');
  const noEval = await cli('report.ts', ['--model', dir, '--no-images']);
  t.is(noEval.code, 1);
  t.regex(noEval.stderr, /eval\.json does not exist\. .*npm run eval -- --model/);
  t.notRegex(noEval.stderr, /\n\s+at /);

  await writeFile(path.join(dir, 'metrics.jsonl'), '{"epoch":1}\nnot json\n');
  const corrupt = await cli('report.ts', ['--model', dir, '--no-images']);
  t.is(corrupt.code, 1);
  t.regex(corrupt.stderr, /metrics\.jsonl line 1: "loss" must be a finite number/);
  t.false(existsSync(path.join(dir, 'report.html')));
});

test('npm run report: pictures from another data set are refused; --no-images lists the entries as text', async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 2, testCount: TEST_COUNT });
  t.teardown(() => fixture.cleanup());
  const dir = await tempDir(t, 'report-mismatch-');
  const { misclassified } = await writeRunFolder(dir);
  const evalFile = path.join(dir, 'eval.json');
  const evaluation = JSON.parse(await readFile(evalFile, 'utf8'));
  const first = misclassified[0];
  const otherLabel = (first.label + 5) % 10 === first.predicted ? (first.label + 6) % 10 : (first.label + 5) % 10;
  evaluation.misclassified[0] = { ...first, label: otherLabel };
  await writeFile(evalFile, JSON.stringify(evaluation));
  const refused = await cli('report.ts', ['--model', dir, '--data', fixture.dir]);
  t.is(refused.code, 1);
  t.regex(refused.stderr, new RegExp(`test image ${first.index} is a ${FIXTURE_CLASS_NAMES[otherLabel]}, but in .* it is labelled ${FIXTURE_CLASS_NAMES[first.label]}`));

  const out = path.join(dir, 'sub', 'text.html');
  const text = await cli('report.ts', ['--model', dir, '--data', path.join(dir, 'nowhere'), '--no-images', '--out', out]);
  t.is(text.code, 0, text.stderr);
  const html = await readFile(out, 'utf8');
  t.false(html.includes('<img'));
  t.is(html.match(/<tr><td>#\d+<\/td>/g)?.length, misclassified.length);

  const missingData = await cli('report.ts', ['--model', dir, '--data', path.join(dir, 'nowhere')]);
  t.is(missingData.code, 1);
  t.regex(missingData.stderr, /--no-images/);
});

test('the report of a real coordinator run (--eval-every 1) has its epochs and test points', async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 4, testCount: 12 });
  t.teardown(() => fixture.cleanup());
  const out = path.join(fixture.root, 'run');
  const trained = await cli('coordinator.ts', [
    '--data', fixture.dir, '--out', out, '--epochs', '2', '--eval-every', '1', '--workers', '1', '--shards', '1', '--backend', 'cpu',
  ]);
  t.is(trained.code, 0, trained.stderr);
  const made = await cli('report.ts', ['--model', out, '--data', fixture.dir]);
  t.is(made.code, 0, made.stderr);
  t.regex(made.stdout, /Report: .*report\.html .*2 epochs, Acc: \d\.\d\d/);
  const html = await readFile(path.join(out, 'report.html'), 'utf8');
  const evaluation = JSON.parse(await readFile(path.join(out, 'eval.json'), 'utf8'));
  t.is(html.match(/<circle class="point" data-series="train"/g)?.length, 2 * 2);
  t.is(html.match(/<circle class="point" data-series="test"/g)?.length, 2 * 2);
  t.is(html.match(/<rect class="cell/g)?.length, 100);
  t.is(html.match(/<img src="data:image\/png;base64,/g)?.length ?? 0, evaluation.misclassified.length);
  t.true(html.includes(`Acc: ${evaluation.accuracy.toFixed(2)}`));
});

// ---- in a real browser ----

// Browser-side code, as plain JavaScript: tsconfig has no DOM types, and tsx would wrap compiled functions in
// helpers that exist only in Node.

interface Layout {
  charts: { id: string; w: number; h: number }[];
  points: { x: number; y: number; inside: boolean }[];
  bars: { w: number; v: number }[];
  cells: { row: number; col: number; count: number; fill: string }[];
  cellText: string[];
}

/** Sizes and positions as laid out: every chart, the loss chart's training points, the bars, the heat map's cells. */
const LAYOUT_SCRIPT = `(() => {
  const box = (el) => el.getBoundingClientRect();
  const charts = [...document.querySelectorAll('svg.chart')].map((svg) => ({ id: svg.id, w: box(svg).width, h: box(svg).height }));
  const loss = document.querySelector('#loss-chart');
  const outer = box(loss);
  const points = [...loss.querySelectorAll('circle.point[data-series="train"]')].map((c) => {
    const b = box(c);
    return { x: b.x + b.width / 2, y: b.y + b.height / 2, inside: b.left >= outer.left && b.right <= outer.right && b.top >= outer.top && b.bottom <= outer.bottom };
  });
  const bars = [...document.querySelectorAll('#per-class-chart rect.bar')].map((r) => ({ w: box(r).width, v: Number(r.getAttribute('data-value')) }));
  const cells = [...document.querySelectorAll('#confusion-chart rect.cell')].map((r) => ({
    row: Number(r.getAttribute('data-row')), col: Number(r.getAttribute('data-col')), count: Number(r.getAttribute('data-count')), fill: getComputedStyle(r).fill,
  }));
  const cellText = [...document.querySelectorAll('#confusion-chart text.cell-value')].map((el) => getComputedStyle(el).fill);
  return { charts, points, bars, cells, cellText };
})()`;

interface GridImage {
  complete: boolean;
  width: number;
  height: number;
  index: number;
  caption: string;
  /** The caption is wider than its card. */
  overflows: boolean;
  pixels: number[];
}

/** Each picture of the misclassified grid as the browser decoded it: size, caption and RGBA pixels (via a canvas). */
const IMAGES_SCRIPT = `[...document.querySelectorAll('figure.miss img')].map((img) => {
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const figure = img.closest('figure');
  return {
    complete: img.complete, width: img.naturalWidth, height: img.naturalHeight, index: Number(figure.getAttribute('data-index')),
    caption: figure.querySelector('figcaption').textContent, overflows: figure.scrollWidth > figure.clientWidth, pixels: [...ctx.getImageData(0, 0, img.naturalWidth, img.naturalHeight).data],
  };
})`;


test('the report renders in headless Chromium: no console errors, no network, charts with every point and cell, images decode', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.fail(`Chromium is not installed at ${CHROMIUM}: this test opens the report in a real browser. Install Debian's package: apt-get update && apt-get install -y chromium (.ci/run does it).`);
    return;
  }
  const fixture = await writeCifar10Fixture({ perFile: 2, testCount: TEST_COUNT });
  t.teardown(() => fixture.cleanup());
  const dir = await tempDir(t, 'report-browser-');
  const { confusion, misclassified } = await writeRunFolder(dir);
  const made = await cli('report.ts', ['--model', dir, '--data', fixture.dir]);
  t.is(made.code, 0, made.stderr);
  const file = path.join(dir, 'report.html');
  const html = await readFile(file, 'utf8');
  t.false(/<script|<link|<iframe|@import|url\(/i.test(html), 'no scripts, stylesheets or other resources');

  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => browser.close());
  const context = await browser.newContext({ offline: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems: string[] = [];
  const requests: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(`${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()}`));
  page.on('request', (request) => requests.push(request.url()));
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });

  const count = (selector: string) => page.locator(selector).count();
  t.is(await count('#loss-chart circle.point[data-series="train"]'), EPOCHS);
  t.is(await count('#loss-chart circle.point[data-series="test"]'), TESTED_EPOCHS.length);
  t.is(await count('#accuracy-chart circle.point[data-series="train"]'), EPOCHS);
  t.is(await count('#accuracy-chart circle.point[data-series="test"]'), TESTED_EPOCHS.length);
  t.is(await count('#loss-chart polyline.line'), 2);
  t.is(await count('#confusion-chart rect.cell'), 100);
  t.is(await count('#per-class-chart rect.bar'), 10);

  // Laid out for real: the charts have a size, the points lie inside their svg, later epochs further right,
  // and the training loss (falling) is drawn higher up first.
  const layout = await page.evaluate<Layout>(LAYOUT_SCRIPT);
  t.is(layout.charts.length, 4);
  for (const chart of layout.charts) t.true(chart.w > 100 && chart.h > 100, `${chart.id} is drawn (${chart.w}×${chart.h})`);
  t.true(layout.points.every((p) => p.inside), 'every loss point lies inside its chart');
  for (let i = 1; i < layout.points.length; i++) {
    t.true(layout.points[i].x > layout.points[i - 1].x, 'epochs run left to right');
    t.true(layout.points[i].y > layout.points[i - 1].y, 'a falling loss is drawn lower each epoch');
  }
  const perfect = layout.bars.find((b) => b.v === 1);
  for (const bar of layout.bars) {
    if (perfect && perfect.w > 0) t.true(Math.abs(bar.w / perfect.w - bar.v) < 0.01, `bar for ${bar.v} has the proportional width`);
  }
  for (const cell of layout.cells) t.is(cell.count, confusion[cell.row][cell.col]);
  const diagonalFill = layout.cells.find((c) => c.row === c.col && confusion[c.row][c.col] > 0)!.fill;
  const emptyFill = layout.cells.find((c) => confusion[c.row][c.col] === 0)!.fill;
  t.not(diagonalFill, emptyFill, 'shades differ with the counts');
  // Readable counts: white on the dark cells (over half of their row), dark on the light ones.
  layout.cells.forEach((cell, k) => {
    const share = confusion[cell.row][cell.col] / confusion[cell.row].reduce((a, b) => a + b, 0);
    t.is(layout.cellText[k], share > 0.5 ? 'rgb(255, 255, 255)' : 'rgb(26, 26, 26)', `count ${cell.row},${cell.col}`);
  });

  // The misclassified grid: one decoded 32×32 picture per entry, with the right pixels and captions.
  const images = await page.evaluate<GridImage[]>(IMAGES_SCRIPT);
  t.is(images.length, misclassified.length);
  images.forEach((img, k) => {
    const entry = misclassified[k];
    t.true(img.complete);
    t.is(img.width, 32);
    t.is(img.height, 32);
    t.is(img.index, entry.index);
    t.is(img.caption, `${FIXTURE_CLASS_NAMES[entry.label]}→${FIXTURE_CLASS_NAMES[entry.predicted]}#${entry.index}`);
    t.false(img.overflows, `the caption of test image ${entry.index} fits its card`);
    let same = true;
    for (let y = 0; y < 32 && same; y++) {
      for (let x = 0; x < 32 && same; x++) {
        for (let c = 0; c < 3; c++) same &&= img.pixels[(y * 32 + x) * 4 + c] === fixturePixel(TEST_FILE_INDEX, entry.index, y, x, c);
      }
    }
    t.true(same, `picture of test image ${entry.index} shows its pixels`);
  });

  t.regex(await page.locator('#final-acc').innerText(), /^Acc: 0\.\d\d$/);
  t.deepEqual(problems, [], 'no console errors or warnings, nothing failed to load');
  t.deepEqual(requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:')), [], 'nothing fetched from a network');

  const shot = path.join(dir, 'report.png');
  await page.screenshot({ path: shot, fullPage: true });
  t.is(PNG.sync.read(await readFile(shot)).width, 1280);
  if (process.env.REPORT_SCREENSHOT) await copyFile(shot, process.env.REPORT_SCREENSHOT);
});
