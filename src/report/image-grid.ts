// The grid of misclassified test images, each with its true and predicted class.
import type { MisclassifiedImage } from './misclassified-images.ts';
import { escapeHtml } from './escape-html.ts';

/** One `<figure class="miss">` per image, the picture shown at 3× with square pixels. */
export function imageGridHtml(images: readonly MisclassifiedImage[], classNames: readonly string[]): string {
  if (images.length === 0) return `<p class="note">No misclassified images to show.</p>`;
  const name = (c: number) => escapeHtml(classNames[c] ?? String(c));
  const figures = images.map(
    (m) =>
      `<figure class="miss" data-index="${m.index}" data-label="${m.label}" data-predicted="${m.predicted}">` +
      `<img src="${m.src}" width="96" height="96" alt="test image ${m.index}: a ${name(m.label)} taken for a ${name(m.predicted)}">` +
      `<figcaption><span class="true">${name(m.label)}</span><wbr><span class="arrow">→</span><span class="pred">${name(m.predicted)}</span>` +
      `<span class="idx">#${m.index}</span></figcaption></figure>`,
  );
  return `<div class="image-grid">\n${figures.join('\n')}\n</div>`;
}

/** Without the data set (--no-images): the same entries as text. */
export function misclassifiedListHtml(
  entries: readonly { readonly index: number; readonly label: number; readonly predicted: number }[],
  classNames: readonly string[],
): string {
  if (entries.length === 0) return `<p class="note">No misclassified images to show.</p>`;
  const name = (c: number) => escapeHtml(classNames[c] ?? String(c));
  const rows = entries.map((m) => `<tr><td>#${m.index}</td><td>${name(m.label)}</td><td>${name(m.predicted)}</td></tr>`);
  return `<table class="miss-list"><thead><tr><th>test image</th><th>true</th><th>predicted</th></tr></thead><tbody>\n${rows.join('\n')}\n</tbody></table>`;
}
