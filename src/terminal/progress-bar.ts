import { SingleBar } from 'cli-progress';

/**
 * The one progress bar of the project (an epoch's steps, a download's bytes), drawn with cli-progress on a
 * terminal and never into a pipe or a log file: on a stream that is not a TTY every call is a no-op.
 * `format` uses cli-progress's tokens ({bar}, {percentage}, {value}, {total}, {eta_formatted}) and the
 * payload's own, e.g. '{label} {bar} {value}/{total} {rate} images/s ETA {eta_formatted}'.
 */
export class ProgressBar {
  private readonly bar: SingleBar | undefined;
  private started = false;

  constructor(format: string, stream: NodeJS.WriteStream = process.stderr) {
    if (stream.isTTY !== true) return;
    this.bar = new SingleBar({
      format, stream, fps: 10, clearOnComplete: true, hideCursor: false, barsize: 30, etaBuffer: 50,
      barCompleteChar: '█', barIncompleteChar: '░', linewrap: false,
    });
  }

  /** Draws `value` of `total` (total may change, as when a new epoch starts), with the payload's tokens. */
  update(value: number, total: number, payload: Record<string, string | number> = {}): void {
    if (!this.bar) return;
    if (!this.started) {
      this.bar.start(total, value, payload);
      this.started = true;
      return;
    }
    if (this.bar.getTotal() !== total) this.bar.setTotal(total);
    this.bar.update(value, payload);
  }

  /** Removes the bar from the terminal (the next update draws a new one). */
  clear(): void {
    if (!this.bar || !this.started) return;
    this.bar.stop();
    this.started = false;
  }
}
