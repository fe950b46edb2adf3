/**
 * In-process tests of the bugs the hardening suites found and fixed (the end-to-end cases are in
 * input.test.ts: `unicode-bad`, `media-image`).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobError } from "../../src/errors.js";
import { silentLogger } from "../../src/log.js";
import { errorLine } from "../../src/media/ffmpeg.js";
import { parseProbe } from "../../src/media/media-info.js";
import { createTaskStore, storableJson, storableText, type TaskResult } from "../../src/tasks/store.js";
import { insertPendingTask, startPostgres, type TestPostgres, taskRow } from "../helpers/postgres.js";

let postgres: TestPostgres;

beforeAll(async () => {
  postgres = await startPostgres();
});

afterAll(async () => {
  await postgres?.stop();
});

describe("task row text PostgreSQL cannot store (lone surrogates, NUL)", () => {
  it("storableText replaces lone surrogates and NUL, keeps valid pairs", () => {
    expect(storableText("a\ud800b\udc00c\u0000d\u{1F483}")).toBe("a\uFFFDb\uFFFDc\uFFFDd\u{1F483}");
    expect(JSON.parse(storableJson({ warnings: ["clips/\ud800.mp4"] }))).toEqual({
      warnings: ["clips/\uFFFD.mp4"],
    });
  });

  it("a failure naming a key with a lone surrogate is recorded (it used to leave the row running)", async () => {
    const taskId = "hardening-surrogate-fail";
    await insertPendingTask(postgres.pool, taskId, 1);
    const store = createTaskStore(postgres.pool, { logger: silentLogger(), userId: 1 });
    await store.start(taskId, "Validating \ud800");
    await store.fail(taskId, {
      stage: "fetching",
      error: "Media file not found: clips/\ud800\u0000.mp4",
      code: "STORAGE_NOT_FOUND",
      retryable: false,
    });
    const row = (await taskRow(postgres.pool, taskId))!;
    expect(row.status).toBe("failed");
    expect(row.error).toBe("Media file not found: clips/\uFFFD\uFFFD.mp4");
    expect(row.result?.["error"]).toBe(row.error);
  });

  it("a result whose warnings carry a lone surrogate is recorded", async () => {
    const taskId = "hardening-surrogate-ok";
    await insertPendingTask(postgres.pool, taskId, 1);
    const store = createTaskStore(postgres.pool, { logger: silentLogger(), userId: 1 });
    const result = { output_path: "output/x.mp4", warnings: ["moves[0] (clips/\udc00.mp4): held"] };
    await store.complete(taskId, result as unknown as TaskResult);
    const row = (await taskRow(postgres.pool, taskId))!;
    expect(row.result?.["warnings"]).toEqual(["moves[0] (clips/\uFFFD.mp4): held"]);
  });
});

describe("a still image as a clip", () => {
  it("says it is a still image, not that its duration is unknown", () => {
    const probe = {
      streams: [{ codec_type: "video", codec_name: "png", width: 160, height: 120, r_frame_rate: "25/1" }],
      format: { format_name: "png_pipe" },
    };
    expect(() => parseProbe(probe, "clips/image.png")).toThrow(/still image \(png\), not a video/);
    try {
      parseProbe(probe, "clips/image.png");
    } catch (err) {
      expect((err as JobError).code).toBe("MEDIA_INVALID");
    }
  });

  it("a stream without a duration that is not an image keeps the old message", () => {
    const probe = { streams: [{ codec_type: "video", codec_name: "h264", width: 2, height: 2 }], format: {} };
    expect(() => parseProbe(probe, "clips/x.mp4")).toThrow(/duration is unknown/);
  });
});

describe("FFmpeg's reason for a full disk", () => {
  it("names the OS error, not the last line", () => {
    const stderr = [
      "[mp4 @ 0x55] Could not write header: No space left on device",
      "av_interleaved_write_frame(): No space left on device",
      "Error initializing output stream 0:0 --",
      "Conversion failed!",
    ].join("\n");
    expect(errorLine(stderr)).toBe("av_interleaved_write_frame(): No space left on device");
    // Without an OS error, the last error-looking line as before.
    expect(errorLine("Invalid data found when processing input\nframe=1\nConversion failed!")).toBe(
      "Conversion failed!",
    );
  });
});
