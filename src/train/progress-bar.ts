/**
 * A one-line progress bar for the epoch in progress, with images/s and ETA. Drawn only when the stream is a
 * terminal; otherwise every call is a no-op, so logs stay clean.
 */
export class ProgressBar {
  private readonly enabled: boolean;
  private lastDraw = 0;

  constructor(private readonly stream: NodeJS.WriteStream = process.stdout) {
    this.enabled = stream.isTTY === true;
  }

  update(label: string, done: number, total: number, elapsedSeconds: number, imagesDone: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.lastDraw < 100 && done < total) return;
    this.lastDraw = now;
    const width = 30;
    const filled = Math.round((done / Math.max(1, total)) * width);
    const rate = elapsedSeconds > 0 ? imagesDone / elapsedSeconds : 0;
    const eta = done > 0 ? (elapsedSeconds / done) * (total - done) : 0;
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    this.stream.write(`\r${label} ${bar} ${done}/${total} ${rate.toFixed(0)} images/s ETA ${formatDuration(eta)}\x1b[K`);
  }

  clear(): void {
    if (this.enabled) this.stream.write('\r\x1b[K');
  }
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}:${String(rest).padStart(2, '0')}`;
}
