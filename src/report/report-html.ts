// The report page: one self-contained HTML file (inline CSS, inline SVG charts, PNG data URLs; no script,
// no external resource), so it opens offline and can be mailed as it is.
import { escapeHtml } from './escape-html.ts';
import { imageGridHtml, misclassifiedListHtml } from './image-grid.ts';
import type { MisclassifiedImage } from './misclassified-images.ts';
import type { RunData } from './report-data.ts';
import { barChartSvg } from './svg-bar-chart.ts';
import { heatMapSvg } from './svg-heat-map.ts';
import { lineChartSvg } from './svg-line-chart.ts';

export const TRAIN_COLOR = '#1f6fb4';
export const TEST_COLOR = '#d9480f';

export interface ReportPageOptions {
  /** The misclassified images with pictures, or null to list them as text (no data set at hand). */
  readonly images: readonly MisclassifiedImage[] | null;
  /** Why there are no pictures, shown when `images` is null. */
  readonly noImagesReason?: string;
  readonly generatedAt: Date;
}

export function reportHtml(run: RunData, options: ReportPageOptions): string {
  const { epochs, evaluation } = run;
  const names = evaluation.classNames;
  const last = epochs[epochs.length - 1];
  const tested = epochs.filter((e) => e.testAcc !== undefined || e.testLoss !== undefined);
  const trainSeconds = epochs.reduce((s, e) => s + e.time, 0);
  const wrong = evaluation.confusion.reduce((s, row, r) => s + row.reduce((a, v, c) => a + (c === r ? 0 : v), 0), 0);
  const title = run.modelName ? `Training report — model '${run.modelName}' on CIFAR-10` : 'Training report — CIFAR-10';

  const lossChart = lineChartSvg({
    id: 'loss-chart', title: 'Loss (cross-entropy) per epoch', xLabel: 'Epoch', yLabel: 'loss',
    series: [
      { name: 'train', color: TRAIN_COLOR, points: epochs.map((e) => ({ x: e.epoch, y: e.loss })) },
      { name: 'test', color: TEST_COLOR, dashed: true, points: tested.filter((e) => e.testLoss !== undefined).map((e) => ({ x: e.epoch, y: e.testLoss! })) },
    ],
  });
  const accChart = lineChartSvg({
    id: 'accuracy-chart', title: 'Accuracy per epoch', xLabel: 'Epoch', yLabel: 'accuracy', yClamp: [0, 1],
    series: [
      { name: 'train', color: TRAIN_COLOR, points: epochs.map((e) => ({ x: e.epoch, y: e.acc })) },
      { name: 'test', color: TEST_COLOR, dashed: true, points: tested.filter((e) => e.testAcc !== undefined).map((e) => ({ x: e.epoch, y: e.testAcc! })) },
    ],
  });
  const barChart = barChartSvg({
    id: 'per-class-chart', title: 'Test accuracy per class',
    bars: names.map((label, c) => ({ label, value: evaluation.perClassAccuracy[c] })),
    reference: { value: evaluation.accuracy, label: `overall ${evaluation.accuracy.toFixed(2)}` },
  });
  const heatMap = heatMapSvg({
    id: 'confusion-chart', title: 'Confusion matrix (test set)', labels: names, counts: evaluation.confusion,
    rowAxis: 'true class', columnAxis: 'predicted class',
  });

  const summary: [string, string][] = [
    ['Epochs', String(last.epoch)],
    ['Final train loss', last.loss.toFixed(5)],
    ['Final train accuracy', last.acc.toFixed(4)],
    ['Test loss', evaluation.loss.toFixed(5)],
    ['Test images', evaluation.images.toLocaleString('en-US')],
    ['Training time', formatDuration(trainSeconds)],
    ['Throughput (last epoch)', `${Math.round(last.imagesPerSecond).toLocaleString('en-US')} images/s`],
    ['Workers', String(last.workers ?? '—')],
  ];
  const noTestCurve = tested.length === 0
    ? `<p class="note">No per-epoch test figures: train with <code>--eval-every N</code> to draw the test curves.</p>`
    : '';
  const shown = options.images ?? evaluation.misclassified;
  const gridNote =
    `${wrong.toLocaleString('en-US')} of ${evaluation.images.toLocaleString('en-US')} test images were misclassified; ` +
    `${shown.length === wrong ? 'all are' : `the first ${shown.length} (by index) are`} shown.`;
  const grid = options.images
    ? imageGridHtml(options.images, names)
    : `<p class="note">Pictures left out${options.noImagesReason ? `: ${escapeHtml(options.noImagesReason)}` : ''}.</p>` +
      misclassifiedListHtml(evaluation.misclassified, names);

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>${escapeHtml(title)}</h1>
<p class="meta">Run folder <code>${escapeHtml(run.dir)}</code> · last epoch ${escapeHtml(String(last.timestamp ?? '—'))} · report generated ${escapeHtml(options.generatedAt.toISOString())}</p>
</header>
<section id="summary">
<div class="headline"><div class="big" id="final-acc">Acc: ${evaluation.accuracy.toFixed(2)}</div>
<div class="sub">${(evaluation.accuracy * 100).toFixed(2)}% of ${evaluation.images.toLocaleString('en-US')} test images correct</div></div>
<dl class="facts">${summary.map(([k, v]) => `<div><dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd></div>`).join('')}</dl>
</section>
<section id="curves">
<h2>Training curves</h2>
${noTestCurve}
<div class="row">${lossChart}${accChart}</div>
</section>
<section id="classes">
<h2>Per class</h2>
<div class="row">${barChart}${heatMap}</div>
<p class="note">Confusion matrix: rows are the true classes, columns the predicted ones; a cell's shade is its share of the row.</p>
</section>
<section id="misclassified">
<h2>Misclassified test images</h2>
<p class="note">${gridNote} Each shows the true class → the predicted one.</p>
${grid}
</section>
</body>
</html>
`;
}

function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds - m * 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

const STYLE = `
:root { color-scheme: light; --ink: #1a1a1a; --muted: #5f6368; --line: #d7dbe0; --train: ${TRAIN_COLOR}; --test: ${TEST_COLOR}; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1260px; padding: 24px 32px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: var(--ink); background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.meta, .note { color: var(--muted); margin: 4px 0 12px; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
#summary { display: flex; flex-wrap: wrap; gap: 24px; align-items: center; margin-top: 16px; padding: 16px 20px; border: 1px solid var(--line); border-radius: 8px; background: #f8f9fb; }
.headline .big { font-size: 40px; font-weight: 700; letter-spacing: -0.5px; }
.headline .sub { color: var(--muted); }
.facts { display: grid; grid-template-columns: repeat(4, minmax(130px, auto)); gap: 10px 28px; margin: 0; }
.facts dt { color: var(--muted); font-size: 12px; }
.facts dd { margin: 0; font-weight: 600; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
svg.chart { max-width: 100%; height: auto; background: #fff; }
svg.chart text { font: 12px system-ui, "DejaVu Sans", sans-serif; fill: var(--ink); }
svg.chart .chart-title { font-size: 14px; font-weight: 600; }
svg.chart .axis-label { fill: var(--muted); }
svg.chart .grid line { stroke: #eceef1; }
svg.chart .axis line { stroke: #9aa0a6; }
svg.chart .bar { fill: var(--train); }
svg.chart .bar-value { fill: var(--muted); paint-order: stroke; stroke: #fff; stroke-width: 3px; }
svg.chart .reference line { stroke: var(--test); stroke-width: 1.5; }
svg.chart .reference text { fill: var(--test); }
svg.chart .frame { stroke: #9aa0a6; }
svg.chart .cell { stroke: #fff; stroke-width: 1; }
svg.chart .cell.diagonal { stroke: #222; stroke-width: 1.5; }
svg.chart text.cell-value { font-size: 11px; }
svg.chart text.cell-value.on-dark { fill: #fff; }
.image-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); gap: 12px; }
figure.miss { margin: 0; padding: 6px; border: 1px solid var(--line); border-radius: 6px; text-align: center; }
figure.miss img { display: block; margin: 0 auto 4px; width: 96px; height: 96px; image-rendering: pixelated; }
figcaption { font-size: 12px; line-height: 1.3; }
figcaption .true { color: var(--train); font-weight: 600; }
figcaption .arrow { color: var(--muted); margin: 0 3px; }
figcaption .pred { color: var(--test); font-weight: 600; }
figcaption .idx { display: block; color: var(--muted); font-size: 11px; }
table.miss-list { border-collapse: collapse; }
table.miss-list td, table.miss-list th { padding: 2px 12px; border-bottom: 1px solid var(--line); text-align: left; }
`;
