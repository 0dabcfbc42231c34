// The confusion matrix as an inline SVG heat map: rows are true classes, columns predicted ones; a cell's
// shade is its share of the row (so every class reads on the same scale however many images it has).
import { escapeHtml } from './escape-html.ts';

export interface HeatMapSpec {
  readonly id: string;
  readonly title: string;
  /** Row and column names, in class order. */
  readonly labels: readonly string[];
  /** counts[row][column]. */
  readonly counts: readonly (readonly number[])[];
  readonly rowAxis: string;
  readonly columnAxis: string;
}

const CELL = 44;
const LEFT = 110;
const TOP = 104;

/** Light to dark blue, by share of the row in [0, 1]. */
const STOPS: readonly [number, number, number][] = [
  [247, 251, 255],
  [198, 219, 239],
  [107, 174, 214],
  [33, 113, 181],
  [8, 48, 107],
];

export function heatColor(share: number): string {
  const t = Math.min(1, Math.max(0, share)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(t));
  const f = t - i;
  const [a, b] = [STOPS[i], STOPS[i + 1]];
  const mix = (k: number) => Math.round(a[k] + (b[k] - a[k]) * f);
  return `rgb(${mix(0)},${mix(1)},${mix(2)})`;
}

/**
 * The matrix as an `<svg class="chart heat-map">`: one `<rect class="cell">` per entry with `data-row`,
 * `data-col` and `data-count`, the count written in it, and a tooltip with the row share.
 */
export function heatMapSvg(spec: HeatMapSpec): string {
  const k = spec.labels.length;
  const width = LEFT + k * CELL + 20;
  const height = TOP + k * CELL + 16;
  const parts: string[] = [`<text class="chart-title" x="10" y="22">${escapeHtml(spec.title)}</text>`];
  parts.push(`<text class="axis-label" x="${LEFT + (k * CELL) / 2}" y="44" text-anchor="middle">${escapeHtml(spec.columnAxis)} →</text>`);
  parts.push(
    `<text class="axis-label" transform="translate(14 ${TOP + (k * CELL) / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(spec.rowAxis)} →</text>`,
  );
  spec.labels.forEach((label, c) => {
    const cx = LEFT + c * CELL + CELL / 2;
    parts.push(`<text class="col-label" transform="translate(${cx + 4} ${TOP - 6}) rotate(-50)">${escapeHtml(label)}</text>`);
  });
  spec.labels.forEach((label, r) => {
    parts.push(`<text class="row-label" x="${LEFT - 6}" y="${TOP + r * CELL + CELL / 2 + 4}" text-anchor="end">${escapeHtml(label)}</text>`);
  });
  spec.counts.forEach((row, r) => {
    const total = row.reduce((a, b) => a + b, 0);
    row.forEach((count, c) => {
      const share = total === 0 ? 0 : count / total;
      const x = LEFT + c * CELL;
      const y = TOP + r * CELL;
      const tip = `true ${spec.labels[r]}, predicted ${spec.labels[c]}: ${count} (${(share * 100).toFixed(1)}% of ${spec.labels[r]})`;
      parts.push(
        `<rect class="cell${r === c ? ' diagonal' : ''}" data-row="${r}" data-col="${c}" data-count="${count}" x="${x}" y="${y}" ` +
          `width="${CELL}" height="${CELL}" fill="${heatColor(share)}"><title>${escapeHtml(tip)}</title></rect>`,
      );
      parts.push(
        `<text class="cell-value${share > 0.5 ? ' on-dark' : ''}" x="${x + CELL / 2}" y="${y + CELL / 2 + 4}" text-anchor="middle">${count}</text>`,
      );
    });
  });
  parts.push(`<rect class="frame" x="${LEFT}" y="${TOP}" width="${k * CELL}" height="${k * CELL}" fill="none"/>`);
  return (
    `<svg class="chart heat-map" id="${escapeHtml(spec.id)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" ` +
    `width="${width}" height="${height}" role="img" aria-label="${escapeHtml(spec.title)}">\n${parts.join('\n')}\n</svg>`
  );
}
