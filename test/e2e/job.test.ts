import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type MoveSpec, runDocument } from "../helpers/blueprints.js";
import { ROOT, type Run, runCli } from "../helpers/cli.js";
import { makeClip, makeSong } from "../helpers/fixtures.js";
import { probeVideo } from "../helpers/measure.js";
import { resetTasks, startPostgres, type TestPostgres, taskRow } from "../helpers/postgres.js";

const DB_PASSWORD = "e2e-Secret-Pa55word";
const TASK_ID = "9a1c6a4e-0000-4000-8000-00000000e2e1";
const USER_ID = 7;

let postgres: TestPostgres;
let pool: pg.Pool;
let root: string;
let tmp: string;
const outputs: Run[] = [];

function blueprint(moves: MoveSpec[], extra: Record<string, unknown> = {}, outputPath = "output/e2e.mp4") {
  return runDocument(moves, { taskId: TASK_ID, outputPath, transitionDuration: 0.4 }, extra);
}

const SIMPLE = blueprint([
  { clip: "clips/red.mp4", duration: 1 },
  { clip: "clips/blue.mp4", duration: 1, transition: "crossfade" },
  { clip: "clips/portrait.mp4", duration: 1, transition: "fade_black" },
]);

function dbEnv(): Record<string, string> {
  return {
    DB_HOST: postgres.config.host ?? "127.0.0.1",
    DB_PORT: String(postgres.config.port),
    DB_NAME: postgres.config.name ?? "postgres",
    DB_USER: postgres.config.user ?? "postgres",
    DB_PASSWORD: postgres.config.password ?? DB_PASSWORD,
  };
}

async function run(
  env: Record<string, string | undefined>,
  options: Partial<Parameters<typeof runCli>[0]> = {},
) {
  const result = await runCli({
    env: { TMPDIR: tmp, LOCAL_STORAGE_ROOT: root, ...dbEnv(), ...env },
    ...options,
  });
  outputs.push(result);
  return result;
}

async function row() {
  return (await taskRow(pool, TASK_ID))!;
}

function tempLeftovers(): string[] {
  return readdirSync(tmp);
}

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), "e2e-root-"));
  tmp = mkdtempSync(path.join(os.tmpdir(), "e2e-tmp-"));
  makeSong(path.join(root, "songs", "song.m4a"), 2);
  makeClip(path.join(root, "clips", "red.mp4"), "red", 2);
  makeClip(path.join(root, "clips", "blue.mp4"), "blue", 2);
  makeClip(path.join(root, "clips", "portrait.mp4"), "green", 2, "180x320", 25);
  postgres = await startPostgres({ password: DB_PASSWORD });
  pool = postgres.pool;
});

afterAll(async () => {
  await postgres?.stop();
  rmSync(root, { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
});

beforeEach(async () => {
  await resetTasks(pool, TASK_ID, USER_ID);
  rmSync(path.join(root, "output"), { recursive: true, force: true });
});

describe("the job as Cloud Run runs it (env vars only, local storage)", () => {
  it("renders, verifies and records a completed task", async () => {
    const result = await run({ TASK_ID, USER_ID: String(USER_ID), BLUEPRINT_JSON: JSON.stringify(SIMPLE) });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);

    const task = await row();
    expect(task.status).toBe("completed");
    expect(task.progress).toBe(100);
    expect(task.stage).toBe("completed");
    expect(task.error).toBeNull();
    const output = path.join(root, "output", "e2e.mp4");
    expect(task.result).toMatchObject({
      video_url: `file://${output}`,
      output_path: "output/e2e.mp4",
      moves_count: 3,
      num_moves: 3,
      width: 320,
      height: 240,
      fps: 30,
      video_codec: "h264",
      audio_codec: "aac",
    });
    expect(task.result?.["duration"]).toBeCloseTo(3, 1);
    expect(Number(task.result?.["file_size"])).toBeGreaterThan(1000);

    const video = probeVideo(output);
    expect(video.frames).toBe(90);
    expect(Math.abs(video.videoDuration - video.audioDuration)).toBeLessThan(1 / 30);
    expect(readdirSync(path.join(root, "output"))).toEqual(["e2e.mp4"]);
    expect(tempLeftovers()).toEqual([]);

    const severities = new Set(result.logs.map((line) => line["severity"]));
    expect(severities.has("INFO")).toBe(true);
    expect(
      result.logs.every((line) => line["task_id"] === TASK_ID || line["message"] === "Job started"),
    ).toBe(true);
    expect(result.logs.some((line) => String(line["message"]).startsWith("Stage rendering done"))).toBe(true);
  });

  it("does nothing on a second run after success (idempotent retry)", async () => {
    const env = { TASK_ID, USER_ID: String(USER_ID), BLUEPRINT_JSON: JSON.stringify(SIMPLE) };
    expect((await run(env)).code).toBe(0);
    const before = await row();
    const second = await run(env);
    expect(second.code).toBe(0);
    expect(second.logs.some((line) => String(line["message"]).includes("already completed"))).toBe(true);
    expect(second.logs.some((line) => String(line["message"]).startsWith("Stage rendering"))).toBe(false);
    const after = await row();
    expect(after.updated_at).toEqual(before.updated_at);
  });

  it("rejects an invalid blueprint with exit 2 and names every field in the row", async () => {
    const bad = blueprint([
      { clip: "clips/red.mp4", duration: 1 },
      { clip: "clips/blue.mp4", duration: -1 },
    ]) as Record<string, unknown>;
    delete bad["audio_path"];
    const result = await run({ BLUEPRINT_JSON: JSON.stringify(bad) });
    expect(result.code).toBe(2);
    const task = await row();
    expect(task.status).toBe("failed");
    expect(task.stage).toBe("validation");
    expect(String(task.error)).toContain("Missing required field: audio_path");
    expect(String(task.error)).toContain("moves[1].duration");
    expect(task.result).toMatchObject({ code: "INVALID_BLUEPRINT", stage: "validation", retryable: false });
    expect(existsSync(path.join(root, "output"))).toBe(false);
  });

  it("marks the TASK_ID row failed when the blueprint is not even JSON", async () => {
    const result = await run({ TASK_ID, BLUEPRINT_JSON: "{not json" });
    expect(result.code).toBe(2);
    const task = await row();
    expect(task.status).toBe("failed");
    expect(task.result).toMatchObject({ code: "INVALID_BLUEPRINT" });
  });

  it("fails with exit 1 naming the storage key when a clip is missing", async () => {
    const missing = blueprint([
      { clip: "clips/red.mp4", duration: 1 },
      { clip: "clips/missing.mp4", duration: 1 },
    ]);
    const result = await run({ BLUEPRINT_JSON: JSON.stringify(missing) });
    expect(result.code).toBe(1);
    const task = await row();
    expect(task.status).toBe("failed");
    expect(task.stage).toBe("fetching");
    expect(String(task.error)).toContain("clips/missing.mp4");
    expect(String(task.error)).not.toContain(tmp);
    expect(String(task.error)).not.toContain(root);
    expect(task.result).toMatchObject({ code: "STORAGE_NOT_FOUND", stage: "fetching" });
    expect(tempLeftovers()).toEqual([]);
  });

  it("touches no row when TASK_ID does not match the blueprint", async () => {
    const before = await row();
    const result = await run({ TASK_ID: "another-task", BLUEPRINT_JSON: JSON.stringify(SIMPLE) });
    expect(result.code).toBe(2);
    expect(await row()).toEqual(before);
    expect(existsSync(path.join(root, "output"))).toBe(false);
  });

  it("touches no row owned by another user", async () => {
    const before = await row();
    const result = await run({ USER_ID: String(USER_ID + 1), BLUEPRINT_JSON: JSON.stringify(SIMPLE) });
    expect(result.code).toBe(1);
    expect(await row()).toEqual(before);
    expect(existsSync(path.join(root, "output"))).toBe(false);
  });

  it("on SIGTERM mid-render records the termination, cleans up and exits within 5 s", async () => {
    const long = blueprint(
      Array.from({ length: 24 }, (_, index) => ({
        clip: index % 2 === 0 ? "clips/red.mp4" : "clips/blue.mp4",
        duration: 1.5,
        transition: "crossfade",
      })),
      {
        output_config: {
          output_path: "output/long.mp4",
          frame_rate: 30,
          resolution: "1280x720",
          preset: "medium",
        },
      },
    );
    const result = await run(
      { BLUEPRINT_JSON: JSON.stringify(long) },
      { terminateWhen: /"stage":"rendering"/, terminateDelayMs: 300 },
    );
    expect(result.exitAfterSignalMs).toBeDefined();
    expect(result.exitAfterSignalMs!).toBeLessThan(5000);
    expect(result.code).toBe(1);
    const task = await row();
    expect(task.status).toBe("failed");
    expect(task.error).toBe("Job terminated: SIGTERM");
    expect(task.stage).toBe("rendering");
    expect(task.result).toMatchObject({ code: "TERMINATED", retryable: true });
    expect(tempLeftovers()).toEqual([]);
    expect(existsSync(path.join(root, "output", "long.mp4"))).toBe(false);
  });
});

describe("CLI modes", () => {
  it("--check prints a summary and exits 0, or every problem and exits 2", async () => {
    const file = path.join(root, "check.json");
    writeFileSync(file, JSON.stringify(SIMPLE));
    const ok = await run({}, { args: ["--check", "--blueprint", file] });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("3");
    const bad = { ...SIMPLE, moves: [{ ...SIMPLE.moves[0], duration: "8" }] };
    writeFileSync(file, JSON.stringify(bad));
    const failed = await run({}, { args: ["--check", "--blueprint", file] });
    expect(failed.code).toBe(2);
    expect(failed.stderr).toContain("moves[0].duration");
  });

  it("--dry-run prints the plan and FFmpeg commands and writes nothing", async () => {
    const before = await row();
    const result = await run({ BLUEPRINT_JSON: JSON.stringify(SIMPLE) }, { args: ["--dry-run"] });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("Render plan: 320x240 @ 30 fps, 90 frames");
    expect(result.stdout).toMatch(/ffmpeg .*-i/);
    expect(existsSync(path.join(root, "output"))).toBe(false);
    expect(await row()).toEqual(before);
    expect(tempLeftovers()).toEqual([]);
  });

  it("--check --json prints one JSON object: valid, no problems, the summary", async () => {
    const result = await run({ BLUEPRINT_JSON: JSON.stringify(SIMPLE) }, { args: ["--check", "--json"] });
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    expect(result.stdout.trim().split("\n")).toHaveLength(1);
    const report = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(report).toEqual({
      valid: true,
      problems: [],
      summary: expect.objectContaining({
        task_id: TASK_ID,
        moves: 3,
        total_duration: 3,
        transitions: { cut: 1, crossfade: 1, fade_black: 1 },
        output_path: "output/e2e.mp4",
        output_format: "mp4",
        video_codec: "libx264",
        frame_rate: 30,
        resolution: null,
      }),
    });
  });

  it("--check --json lists every problem with path, expected and found, configuration included (exit 2)", async () => {
    const bad = { ...SIMPLE, moves: [{ ...SIMPLE.moves[0], duration: "8" }], audio_path: undefined };
    const result = await run(
      { VIDEO_CRF: "80", BLUEPRINT_JSON: JSON.stringify(bad) },
      { args: ["--check", "--json"] },
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toBe("");
    const report = JSON.parse(result.stdout) as {
      valid: boolean;
      problems: Array<Record<string, unknown>>;
      summary: unknown;
    };
    expect(report.valid).toBe(false);
    expect(report.summary).toBeNull();
    expect(report.problems).toContainEqual(
      expect.objectContaining({ source: "environment", path: "VIDEO_CRF" }),
    );
    expect(report.problems).toContainEqual({
      source: "blueprint",
      path: "moves[0].duration",
      message: expect.stringContaining("expected"),
      expected: expect.any(String),
      found: expect.stringContaining('"8"'),
    });
    expect(report.problems).toContainEqual(
      expect.objectContaining({ path: "audio_path", message: "Missing required field: audio_path" }),
    );
    for (const problem of report.problems) {
      expect(Object.keys(problem).sort()).toEqual(["expected", "found", "message", "path", "source"]);
    }
  });

  it("--dry-run --json prints only the plan as JSON on stdout (logs on stderr) and writes nothing", async () => {
    const before = await row();
    const result = await run({ BLUEPRINT_JSON: JSON.stringify(SIMPLE) }, { args: ["--dry-run", "--json"] });
    expect(result.code).toBe(0);
    expect(result.stdout.trim().split("\n")).toHaveLength(1);
    const report = JSON.parse(result.stdout) as {
      valid: boolean;
      plan: Record<string, unknown>;
      commands: string[][];
      error: unknown;
    };
    expect(report.valid).toBe(true);
    expect(report.error).toBeNull();
    expect(report.plan).toMatchObject({
      width: 320,
      height: 240,
      fps: 30,
      total_frames: 90,
      clip_cache: true,
    });
    // The two transition windows and the join at least (the song's encode is cached by the earlier runs).
    expect(report.commands.length).toBeGreaterThanOrEqual(3);
    for (const command of report.commands) expect(command[0]).toBe("ffmpeg");
    expect(report.commands.some((command) => command.includes("-filter_complex"))).toBe(true);
    expect(existsSync(path.join(root, "output"))).toBe(false);
    expect(await row()).toEqual(before);
    expect(tempLeftovers()).toEqual([]);
  });

  it("--dry-run --json reports a missing clip as an error object (exit 1)", async () => {
    const missing = blueprint([{ clip: "clips/nope.mp4", duration: 1 }]);
    const result = await run({ BLUEPRINT_JSON: JSON.stringify(missing) }, { args: ["--dry-run", "--json"] });
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as {
      valid: boolean;
      plan: unknown;
      error: Record<string, unknown>;
    };
    expect(report.valid).toBe(true);
    expect(report.plan).toBeNull();
    expect(report.error).toMatchObject({ code: "STORAGE_NOT_FOUND", retryable: false });
    expect(String(report.error["message"])).toContain("clips/nope.mp4");
    const errorLine = result.stderr.split("\n").find((line) => line.includes('"severity":"ERROR"'));
    expect(errorLine).toBeDefined();
  });

  it("--version prints the package version", async () => {
    const result = await run({}, { args: ["--version"] });
    expect(result.code).toBe(0);
    const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string };
    expect(result.stdout).toBe(`${pkg.version}\n`);
  });

  it("a failed run is logged at ERROR", async () => {
    const missing = blueprint([{ clip: "clips/nope.mp4", duration: 1 }]);
    const result = await run({ TASK_ID, BLUEPRINT_JSON: JSON.stringify(missing) });
    expect(result.code).toBe(1);
    const failed = result.logs.find((line) => String(line["message"]).startsWith("Job failed"));
    expect(failed).toMatchObject({ severity: "ERROR", code: "STORAGE_NOT_FOUND", stage: "fetching" });
    // Not an internal error: no stack trace for error reporting.
    expect(failed?.["stack_trace"]).toBeUndefined();
  });

  it("reports invalid configuration all at once with exit 2", async () => {
    const result = await run({ VIDEO_CRF: "80", DB_PORT: "x", BLUEPRINT_JSON: JSON.stringify(SIMPLE) });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("VIDEO_CRF");
    expect(result.stderr).toContain("DB_PORT");
  });
});

describe("threads from the CPUs granted", () => {
  it("under taskset -c 0 every FFmpeg run is single-threaded and one runs at a time", async () => {
    const result = await run(
      { TASK_ID, BLUEPRINT_JSON: JSON.stringify(SIMPLE), LOG_LEVEL: "DEBUG", CLIP_CACHE: "off" },
      { wrap: ["taskset", "-c", "0"] },
    );
    expect(result.code).toBe(0);
    expect(result.logs.find((line) => line["message"] === "Job started")).toMatchObject({
      cpus: 1,
      cpu_limit: "affinity",
    });
    expect(result.logs.find((line) => line["message"] === "Rendering")).toMatchObject({ concurrency: 1 });
    const runs = result.logs.filter((line) => Array.isArray(line["args"]) && line["ffmpeg"] !== undefined);
    const decoding = runs.filter((line) => !(line["args"] as string[]).join(" ").includes("-c copy"));
    expect(decoding.length).toBeGreaterThan(3);
    for (const line of decoding) {
      const args = line["args"] as string[];
      const threads = args.flatMap((arg, i) => (arg === "-threads" ? [args[i + 1]] : []));
      expect(threads.length, String(line["message"])).toBeGreaterThan(0);
      expect(new Set(threads), String(line["message"])).toEqual(new Set(["1"]));
    }
    const check = decoding.find((line) => String(line["message"]).includes("decoding the rendered video"));
    expect(check?.["args"]).toEqual(expect.arrayContaining(["-threads", "1", "-filter_threads", "1"]));
    expect((await row()).status).toBe("completed");
  });
});

describe("--dry-run prints what a run executes", () => {
  /** A command with the job's temp directories (`video-job-…`, `video-job-dry-…`) replaced by `<work>`. */
  const normalise = (args: string[]) =>
    args.map((arg) => arg.replace(/[^'\s]*\/video-job-(dry-)?[A-Za-z0-9]+/g, "<work>")).join(" ");
  const rendered = (logs: Array<Record<string, unknown>>) =>
    logs
      .filter((line) => Array.isArray(line["args"]) && line["ffmpeg"] !== undefined)
      .filter((line) => !String(line["message"]).includes("decoding the rendered video"))
      .map((line) => normalise(line["args"] as string[]))
      .sort();

  for (const cache of ["on", "off"] as const) {
    it(`after a warm run, the dry run's commands are the commands the next run logs (CLIP_CACHE=${cache})`, async () => {
      const env = { TASK_ID, BLUEPRINT_JSON: JSON.stringify(SIMPLE), LOG_LEVEL: "DEBUG", CLIP_CACHE: cache };
      expect((await run(env)).code).toBe(0); // warms the cache
      await pool.query("update choreography_tasks set status = 'pending', result = null where task_id = $1", [
        TASK_ID,
      ]);
      const dry = await run({ ...env, LOG_LEVEL: "INFO" }, { args: ["--dry-run", "--json"] });
      expect(dry.code).toBe(0);
      const report = JSON.parse(dry.stdout) as { commands: string[][]; plan: { clip_cache: boolean } };
      expect(report.plan.clip_cache).toBe(cache === "on");
      const real = await run(env);
      expect(real.code).toBe(0);
      const executed = rendered(real.logs);
      // Two transition windows and the join at least (warm: the song's encode comes from the cache).
      expect(executed.length).toBeGreaterThanOrEqual(3);
      expect(report.commands.map((command) => normalise(command.slice(1))).sort()).toEqual(executed);
      if (cache === "on") {
        // Warm: move bodies are stream-copied out of the entries, nothing is normalised again.
        expect(executed.some((command) => command.includes(".clip-cache"))).toBe(true);
        expect(real.logs.some((line) => String(line["message"]).startsWith("FFmpeg: normalising"))).toBe(
          false,
        );
      }
    });
  }
});

describe("embedded PostgreSQL (no database configured, not on Cloud Run)", () => {
  it("creates the table and the row, and completes the task", async () => {
    const localRoot = mkdtempSync(path.join(os.tmpdir(), "e2e-embedded-"));
    try {
      for (const dir of ["songs", "clips"]) mkdirSync(path.join(localRoot, dir));
      makeSong(path.join(localRoot, "songs", "song.m4a"), 2);
      makeClip(path.join(localRoot, "clips", "red.mp4"), "red", 2);
      makeClip(path.join(localRoot, "clips", "blue.mp4"), "blue", 2);
      const two = blueprint([
        { clip: "clips/red.mp4", duration: 1 },
        { clip: "clips/blue.mp4", duration: 1, transition: "fade_white" },
      ]);
      const result = await runCli({
        env: { TMPDIR: tmp, LOCAL_STORAGE_ROOT: localRoot, BLUEPRINT_JSON: JSON.stringify(two) },
      });
      outputs.push(result);
      expect(result.code).toBe(0);
      expect(result.logs.some((line) => /embedded PostgreSQL/i.test(String(line["message"])))).toBe(true);
      expect(probeVideo(path.join(localRoot, "output", "e2e.mp4")).frames).toBe(60);
      expect(existsSync(path.join(localRoot, ".pgdata"))).toBe(true);
    } finally {
      rmSync(localRoot, { recursive: true, force: true });
    }
  });
});

describe("secrets", () => {
  it("never prints the database password", () => {
    expect(outputs.length).toBeGreaterThan(5);
    for (const output of outputs) {
      expect(output.stdout).not.toContain(DB_PASSWORD);
      expect(output.stderr).not.toContain(DB_PASSWORD);
    }
  });
});
