import { Writable } from "node:stream";

/** Live progress for a person at a terminal; Cloud Run logs get the task row's progress instead. */
export interface ProgressReporter {
  stage(name: string): void;
  /** `fraction` of the current stage's work is done (0–1). */
  update(fraction: number, detail?: string): void;
  done(): void;
}

export interface ProgressBar extends ProgressReporter {
  /**
   * A stream for log lines written to the same terminal: each write clears the bar's line first and
   * redraws the bar after it, so a log line never lands in the middle of the bar.
   */
  readonly logStream: Writable;
}

const WIDTH = 30;
/** Redraws at most this often, so a fast FFmpeg doesn't flood the terminal. */
const MIN_INTERVAL_MS = 100;
const CLEAR_LINE = "\r\x1b[2K";

export function createProgressBar(stream: NodeJS.WritableStream = process.stderr): ProgressBar {
  let current = "";
  let lastDraw = 0;
  /** The bar's text while it is on screen. */
  let shown: string | undefined;
  const clear = () => {
    if (shown !== undefined) stream.write(CLEAR_LINE);
    shown = undefined;
  };
  const draw = (text: string) => {
    stream.write(`${CLEAR_LINE}${text}`);
    shown = text;
  };
  const logStream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      const bar = shown;
      clear();
      stream.write(chunk);
      if (bar !== undefined) draw(bar);
      callback();
    },
  });
  return {
    logStream,
    stage(name) {
      clear();
      current = name;
    },
    update(fraction, detail = "") {
      const now = Date.now();
      if (now - lastDraw < MIN_INTERVAL_MS && fraction < 1) return;
      lastDraw = now;
      const clamped = Math.min(1, Math.max(0, fraction));
      const filled = Math.round(clamped * WIDTH);
      const bar = `${"█".repeat(filled)}${"░".repeat(WIDTH - filled)}`;
      const percent = `${Math.floor(clamped * 100)}`.padStart(3);
      draw(`${current.padEnd(10)} ${bar} ${percent}% ${detail}`);
    },
    done() {
      clear();
    },
  };
}
