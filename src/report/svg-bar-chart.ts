// A horizontal bar chart of fractions (per-class accuracy) as inline SVG, with a marked reference value.
import { escapeHtml } from './escape-html.ts';

export interface BarChartSpec {
  readonly id: string;
  readonly title: string;
  readonly bars: readonly { readonly label: string; readonly value: number }[];
  /** A dashed vertical line (the overall accuracy), with its label. */
  readonly reference?: { readonly value: number; readonly label: string };
}

const WIDTH = 560;
const LEFT = 100;
const RIGHT = 56;
const TOP = 44;
const ROW = 26;

/** `<svg class="chart bar-chart">` with one `<rect class="bar">` (data-label, data-value) per bar, on a 0–1 axis. */
export function barChartSvg(spec: BarChartSpec): string {
  const plotWidth = WIDTH - LEFT - RIGHT;
  const height = TOP + spec.bars.length * ROW + 34;
  const x = (v: number) => LEFT + Math.min(1, Math.max(0, v)) * plotWidth;
  const bottom = TOP + spec.bars.length * ROW;
  const parts: string[] = [`<text class="chart-title" x="10" y="22">${escapeHtml(spec.title)}</text>`];
  parts.push(`<g class="grid">`);
  for (let t = 0; t <= 10; t += 2) {
    const tx = x(t / 10).toFixed(1);
    parts.push(`<line x1="${tx}" x2="${tx}" y1="${TOP - 4}" y2="${bottom}"/>`);
  }
  parts.push(`</g><g class="axis x-axis">`);
  for (let t = 0; t <= 10; t += 2) parts.push(`<text x="${x(t / 10).toFixed(1)}" y="${bottom + 16}" text-anchor="middle">${(t / 10).toFixed(1)}</text>`);
  parts.push(`</g>`);
  // Bars, then the reference line across them, then the values on top (with a white halo).
  const values: string[] = [];
  spec.bars.forEach((bar, i) => {
    const y = TOP + i * ROW;
    const label = escapeHtml(bar.label);
    parts.push(`<text class="row-label" x="${LEFT - 8}" y="${y + ROW / 2 + 4}" text-anchor="end">${label}</text>`);
    parts.push(
      `<rect class="bar" data-label="${label}" data-value="${bar.value}" x="${LEFT}" y="${y + 4}" width="${(x(bar.value) - LEFT).toFixed(1)}" ` +
        `height="${ROW - 8}"><title>${label}: ${bar.value.toFixed(4)}</title></rect>`,
    );
    values.push(`<text class="bar-value" x="${(x(bar.value) + 5).toFixed(1)}" y="${y + ROW / 2 + 4}">${bar.value.toFixed(2)}</text>`);
  });
  if (spec.reference) {
    const rx = x(spec.reference.value).toFixed(1);
    parts.push(
      `<g class="reference"><line x1="${rx}" x2="${rx}" y1="${TOP - 8}" y2="${bottom}" stroke-dasharray="5 4"/>` +
        `<text x="${rx}" y="${TOP - 12}" text-anchor="middle">${escapeHtml(spec.reference.label)}</text></g>`,
    );
  }
  parts.push(...values);
  return (
    `<svg class="chart bar-chart" id="${escapeHtml(spec.id)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${height}" ` +
    `width="${WIDTH}" height="${height}" role="img" aria-label="${escapeHtml(spec.title)}">\n${parts.join('\n')}\n</svg>`
  );
}
