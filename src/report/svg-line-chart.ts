// A line chart as inline SVG: one polyline and one marker per point for each series, over epochs.
import { formatTick, integerTicks, linearScale, niceDomain } from './axis-scale.ts';
import { escapeHtml } from './escape-html.ts';

export interface LineSeries {
  readonly name: string;
  /** CSS colour of the line and its markers. */
  readonly color: string;
  /** x (an epoch) and y; drawn in the given order. */
  readonly points: readonly { readonly x: number; readonly y: number }[];
  readonly dashed?: boolean;
}

export interface LineChartSpec {
  /** Becomes the svg's id (and so a handle for tests and links). */
  readonly id: string;
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly LineSeries[];
  /** Keep the y axis within these bounds (accuracy: [0, 1]). */
  readonly yClamp?: readonly [number, number];
  /** Decimals of the values in the markers' tooltips (default 4). */
  readonly valueDecimals?: number;
}

const WIDTH = 560;
const HEIGHT = 320;
const MARGIN = { left: 60, right: 20, top: 40, bottom: 48 };

/**
 * The chart as an `<svg class="chart line-chart">`. Every point is a `<circle class="point">` with
 * `data-series`, `data-x` and `data-y`, and a tooltip; series without points are left out.
 */
export function lineChartSvg(spec: LineChartSpec): string {
  const series = spec.series.filter((s) => s.points.length > 0);
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y));
  const parts: string[] = [];
  const title = `<text class="chart-title" x="${MARGIN.left}" y="22">${escapeHtml(spec.title)}</text>`;
  if (xs.length === 0) {
    return svg(spec, [title, `<text class="empty" x="${WIDTH / 2}" y="${HEIGHT / 2}" text-anchor="middle">no data</text>`]);
  }
  const xFirst = Math.min(...xs);
  const xLast = Math.max(...xs);
  const xTicks = integerTicks(xFirst, xLast);
  // A lone epoch sits in the middle; otherwise the first and last epochs touch the plot's edges (with a margin).
  const xPad = xLast === xFirst ? 1 : 0;
  const x = linearScale(xFirst - xPad, xLast + xPad, MARGIN.left + 12, WIDTH - MARGIN.right - 12);
  let lo = Math.min(...ys);
  let hi = Math.max(...ys);
  if (spec.yClamp) {
    lo = Math.max(spec.yClamp[0], lo);
    hi = Math.min(spec.yClamp[1], hi);
  }
  const domain = niceDomain(lo, hi, 5);
  let { min, max } = domain;
  let yTicks = domain.ticks;
  if (spec.yClamp) {
    min = Math.max(spec.yClamp[0], min);
    max = Math.min(spec.yClamp[1], max);
    yTicks = yTicks.filter((t) => t >= min - 1e-12 && t <= max + 1e-12);
  }
  const y = linearScale(min, max, HEIGHT - MARGIN.bottom, MARGIN.top);
  const yStep = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 1;
  const plotLeft = MARGIN.left;
  const plotRight = WIDTH - MARGIN.right;
  const plotTop = MARGIN.top;
  const plotBottom = HEIGHT - MARGIN.bottom;

  parts.push(title);
  parts.push(`<g class="grid">`);
  for (const t of yTicks) {
    const ty = y(t).toFixed(1);
    parts.push(`<line x1="${plotLeft}" x2="${plotRight}" y1="${ty}" y2="${ty}"/>`);
  }
  parts.push(`</g>`);
  parts.push(`<g class="axis y-axis">`);
  for (const t of yTicks) {
    parts.push(`<text x="${plotLeft - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${formatTick(t, yStep)}</text>`);
  }
  parts.push(
    `<text class="axis-label" transform="translate(16 ${(plotTop + plotBottom) / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(spec.yLabel)}</text>`,
  );
  parts.push(`</g>`);
  parts.push(`<g class="axis x-axis">`);
  parts.push(`<line x1="${plotLeft}" x2="${plotRight}" y1="${plotBottom}" y2="${plotBottom}"/>`);
  for (const t of xTicks) {
    const tx = x(t).toFixed(1);
    parts.push(`<line x1="${tx}" x2="${tx}" y1="${plotBottom}" y2="${plotBottom + 5}"/>`);
    parts.push(`<text x="${tx}" y="${plotBottom + 18}" text-anchor="middle">${t}</text>`);
  }
  parts.push(`<text class="axis-label" x="${(plotLeft + plotRight) / 2}" y="${HEIGHT - 8}" text-anchor="middle">${escapeHtml(spec.xLabel)}</text>`);
  parts.push(`</g>`);

  const decimals = spec.valueDecimals ?? 4;
  series.forEach((s, i) => {
    const name = escapeHtml(s.name);
    const coords = s.points.map((p) => `${x(p.x).toFixed(1)},${y(clampTo(p.y, min, max)).toFixed(1)}`);
    parts.push(`<g class="series" data-series="${name}">`);
    parts.push(
      `<polyline class="line" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${coords.join(' ')}"/>`,
    );
    s.points.forEach((p, k) => {
      const [cx, cy] = coords[k].split(',');
      parts.push(
        `<circle class="point" data-series="${name}" data-x="${p.x}" data-y="${p.y}" cx="${cx}" cy="${cy}" r="3.5" fill="${s.color}">` +
          `<title>${name}, ${escapeHtml(spec.xLabel.toLowerCase())} ${p.x}: ${p.y.toFixed(decimals)}</title></circle>`,
      );
    });
    parts.push(`</g>`);
    // Legend, top right, one row per series.
    const ly = 14 + i * 16;
    const lx = WIDTH - MARGIN.right - 120;
    parts.push(
      `<g class="legend"><line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>` +
        `<circle cx="${lx + 11}" cy="${ly}" r="3.5" fill="${s.color}"/><text x="${lx + 28}" y="${ly + 4}">${name}</text></g>`,
    );
  });
  return svg(spec, parts);
}

function clampTo(v: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, v));
}

function svg(spec: LineChartSpec, parts: string[]): string {
  return (
    `<svg class="chart line-chart" id="${escapeHtml(spec.id)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" ` +
    `width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${escapeHtml(spec.title)}">\n${parts.join('\n')}\n</svg>`
  );
}
