/** Live progress for a person at a terminal; Cloud Run logs get the task row's progress instead. */
export interface ProgressReporter {
  stage(name: string): void;
  /** `fraction` of the current stage's work is done (0–1). */
  update(fraction: number, detail?: string): void;
  done(): void;
}

const WIDTH = 30;
/** Redraws at most this often, so a fast FFmpeg doesn't flood the terminal. */
const MIN_INTERVAL_MS = 100;

export function createProgressBar(stream: NodeJS.WriteStream = process.stderr): ProgressReporter {
  let current = "";
  let lastDraw = 0;
  let drawn = false;
  const clear = () => {
    if (drawn) stream.write("\r\x1b[2K");
    drawn = false;
  };
  return {
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
      stream.write(`\r\x1b[2K${current.padEnd(10)} ${bar} ${percent}% ${detail}`);
      drawn = true;
    },
    done() {
      clear();
    },
  };
}
