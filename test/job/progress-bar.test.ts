import { describe, expect, it } from "vitest";
import { createProgressBar } from "../../src/job/progress-bar.js";
import { createLogger } from "../../src/log.js";

const CLEAR = "\r\x1b[2K";

function terminal() {
  const writes: string[] = [];
  const stream = {
    write(chunk: string | Uint8Array) {
      writes.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  return { stream, writes, text: () => writes.join("") };
}

/** What a terminal shows: `\r` returns to the line's start, CLEAR erases it. */
function screen(text: string): string[] {
  const lines: string[] = [""];
  for (const part of text.split(/(\r\x1b\[2K|\n)/)) {
    if (part === CLEAR) lines[lines.length - 1] = "";
    else if (part === "\n") lines.push("");
    else lines[lines.length - 1] += part;
  }
  return lines;
}

describe("the terminal progress bar", () => {
  it("clears its line before a log line and redraws itself after it", () => {
    const tty = terminal();
    const bar = createProgressBar(tty.stream);
    bar.stage("fetching");
    bar.update(0.5, "3/6 files");
    bar.logStream.write("[06:27:36] INFO: Fetched the song\n");
    const shown = screen(tty.text());
    expect(shown).toHaveLength(2);
    expect(shown[0]).toBe("[06:27:36] INFO: Fetched the song");
    expect(shown[1]).toMatch(/^fetching\s+█+░+\s+50% 3\/6 files$/);
    // The log line starts on a cleared line, never after the bar's text.
    expect(tty.text()).toContain(`${CLEAR}[06:27:36]`);
  });

  it("writes log lines untouched when no bar is shown, and removes the bar when done", () => {
    const tty = terminal();
    const bar = createProgressBar(tty.stream);
    bar.logStream.write("first\n");
    expect(tty.text()).toBe("first\n");
    bar.stage("rendering");
    bar.update(1, "2.0x");
    bar.done();
    bar.logStream.write("after\n");
    expect(screen(tty.text())).toEqual(["first", "after", ""]);
  });

  it("pretty logs go through it synchronously, each on its own line", () => {
    const tty = terminal();
    const bar = createProgressBar(tty.stream);
    const logger = createLogger({ level: "info", format: "pretty", prettyStream: bar.logStream });
    bar.stage("fetching");
    bar.update(1, "6/6 files");
    logger.info("Stage fetching done");
    const shown = screen(tty.text());
    expect(shown[0]).toContain("Stage fetching done");
    expect(shown[0]).not.toContain("█");
    expect(shown[1]).toMatch(/^fetching\s+█+\s+100% 6\/6 files$/);
  });
});
