import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { JobError } from "../../src/errors.js";
import { parseProgressLine, redactPaths, runFfmpeg } from "../../src/media/ffmpeg.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "ffmpeg-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** PIDs of running processes whose command line contains `marker`. */
function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(marker)) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

describe("runFfmpeg", () => {
  it("runs an argument array and reports progress from the timemark", async () => {
    const seen: number[] = [];
    const result = await runFfmpeg(
      [
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-stats",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=64x48:r=30:d=3",
        "-f",
        "null",
        "-",
      ],
      { timeoutMs: 30_000, onProgress: (p) => seen.push(p.seconds) },
    );
    expect(result.durationMs).toBeGreaterThan(0);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.at(-1)).toBeCloseTo(3, 0);
    expect(result.stderr).toBe("");
  });

  it("fails with FFMPEG_FAILED: a user-safe message saying what was rendered, the stderr tail in details", async () => {
    const missing = path.join(dir, "missing-input.mp4");
    const error = await runFfmpeg(
      ["-hide_banner", "-nostdin", "-v", "error", "-i", missing, "-f", "null", "-"],
      {
        timeoutMs: 30_000,
        label: "rendering move 3 (move_3)",
      },
    ).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(JobError);
    expect(error).toMatchObject({ code: "FFMPEG_FAILED" });
    const { message, details } = error as JobError;
    expect(message).toMatch(
      /^FFmpeg failed while rendering move 3 \(move_3\): missing-input\.mp4: No such file or directory$/,
    );
    expect(message).not.toContain(dir);
    expect((details as { stderr: string }).stderr).toContain("No such file or directory");
  });

  it("kills a hung FFmpeg with the watchdog (FFMPEG_TIMEOUT)", async () => {
    const fifo = path.join(dir, "nobody-writes.fifo");
    execFileSync("mkfifo", [fifo]);
    const started = performance.now();
    const error = await runFfmpeg(
      ["-hide_banner", "-nostdin", "-v", "error", "-i", fifo, "-f", "null", "-"],
      {
        timeoutMs: 700,
        label: "reading a FIFO",
      },
    ).catch((err: unknown) => err);
    expect(error).toMatchObject({
      code: "FFMPEG_TIMEOUT",
      message: "FFmpeg did not finish within 0.7 s while reading a FIFO",
    });
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(processesWith(fifo)).toEqual([]);
  });

  it("kills FFmpeg at once when the signal aborts, rejecting with the signal's reason", async () => {
    const marker = `testsrc2=s=96x64:r=29:d=${600 + Math.floor(Math.random() * 1000)}`;
    const controller = new AbortController();
    const reason = new JobError("Job terminated: SIGTERM", { code: "TERMINATED" });
    const running = runFfmpeg(
      [
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-stats",
        "-re",
        "-f",
        "lavfi",
        "-i",
        marker,
        "-f",
        "null",
        "-",
      ],
      { timeoutMs: 60_000, signal: controller.signal },
    );
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(processesWith(marker).length).toBeGreaterThan(0);
    const aborted = performance.now();
    controller.abort(reason);
    await expect(running).rejects.toBe(reason);
    expect(performance.now() - aborted).toBeLessThan(1_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(processesWith(marker)).toEqual([]);
  });

  it("does not start when the signal is already aborted", async () => {
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    await expect(runFfmpeg(["-version"], { timeoutMs: 1_000, signal: controller.signal })).rejects.toThrow(
      "stop",
    );
  });

  it("reports a missing binary as FFMPEG_FAILED", async () => {
    await expect(
      runFfmpeg(["-version"], { timeoutMs: 5_000, ffmpegPath: path.join(dir, "no-ffmpeg-here") }),
    ).rejects.toMatchObject({
      code: "FFMPEG_FAILED",
      message: expect.stringContaining("no-ffmpeg-here not found"),
    });
  });
});

describe("helpers", () => {
  it("parses progress lines", () => {
    expect(
      parseProgressLine("frame=  120 fps=0.0 q=-0.0 size=N/A time=00:01:02.50 bitrate=N/A speed=2.5x"),
    ).toEqual({
      seconds: 62.5,
      speed: 2.5,
    });
    expect(parseProgressLine("size=N/A time=00:00:01.00 bitrate=N/A speed=N/A")).toEqual({ seconds: 1 });
    expect(parseProgressLine("[h264 @ 0x1] error")).toBeUndefined();
  });

  it("removes directories from paths in messages", () => {
    expect(redactPaths("/tmp/video-job-x/media/clips/a.mp4: Invalid data")).toBe("a.mp4: Invalid data");
    expect(redactPaths("Error opening output /tmp/w/render/piece-0001.mp4.")).toBe(
      "Error opening output piece-0001.mp4.",
    );
  });
});
