/**
 * The composed job in process, with real adapters (PostgreSQL, local storage, FFmpeg): its stages run
 * in order and every resource is released on every path, last in, first out.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { type JobDependencies, jobDependencies, runJob } from "../../src/job/run.js";
import { makeClip, makeSong } from "../helpers/fixtures.js";
import { captureLogs } from "../helpers/log-capture.js";
import { resetTasks, startPostgres, type TestPostgres, taskRow } from "../helpers/postgres.js";

const TASK_ID = "9a1c6a4e-0000-4000-8000-0000000000r1";

let postgres: TestPostgres;
let root: string;
let tmp: string;
const savedTmp = process.env["TMPDIR"];

const blueprint = (clip = "clips/red.mp4") =>
  JSON.stringify({
    task_id: TASK_ID,
    audio_path: "songs/song.m4a",
    moves: [
      { clip_id: "a", video_path: "clips/red.mp4", start_time: 0, duration: 1, transition_type: "cut" },
      { clip_id: "b", video_path: clip, start_time: 1, duration: 1, transition_type: "crossfade" },
    ],
    total_duration: 2,
    output_config: { output_path: "output/run.mp4", frame_rate: 30, transition_duration: 0.4 },
  });

function config() {
  return loadConfig({
    LOCAL_STORAGE_ROOT: root,
    DB_HOST: postgres.config.host,
    DB_PORT: String(postgres.config.port),
    DB_NAME: postgres.config.name,
    DB_USER: postgres.config.user,
    DB_PASSWORD: postgres.config.password,
    CLIP_CACHE: "off",
  });
}

/** The real adapters, with every release recorded in the order it runs. */
function recorded(releases: string[]): JobDependencies {
  const real = jobDependencies(config());
  return {
    openTasks: async (logger, signal) => {
      const opened = await real.openTasks(logger, signal);
      const { tasks } = opened;
      return {
        embedded: opened.embedded,
        close: async () => {
          releases.push("database");
          await opened.close();
        },
        tasks: {
          ...tasks,
          flush: async () => {
            releases.push("flush");
            await tasks.flush();
          },
          release: async () => {
            releases.push("task lock");
            await tasks.release();
          },
        },
      };
    },
    createStorage: (logger) => {
      const storage = real.createStorage(logger);
      return {
        ...storage,
        dispose: async () => {
          releases.push("storage");
          await storage.dispose?.();
        },
      };
    },
  };
}

beforeAll(async () => {
  postgres = await startPostgres();
  root = mkdtempSync(path.join(os.tmpdir(), "run-root-"));
  tmp = mkdtempSync(path.join(os.tmpdir(), "run-tmp-"));
  // The job's temp directories go here, so the test sees whether any is left.
  process.env["TMPDIR"] = tmp;
  makeSong(path.join(root, "songs", "song.m4a"), 2);
  makeClip(path.join(root, "clips", "red.mp4"), "red", 2);
  makeClip(path.join(root, "clips", "blue.mp4"), "blue", 2);
});

afterAll(async () => {
  if (savedTmp === undefined) delete process.env["TMPDIR"];
  else process.env["TMPDIR"] = savedTmp;
  await postgres?.stop();
  rmSync(root, { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
});

beforeEach(async () => {
  await resetTasks(postgres.pool, TASK_ID, 1);
});

async function row() {
  return (await taskRow(postgres.pool, TASK_ID))!;
}

describe("runJob composed over real adapters", () => {
  it("renders and records the result, then releases storage, workspace, row writes, lock and database in reverse order", async () => {
    const releases: string[] = [];
    const { logger, lines } = captureLogs();
    const outcome = await runJob(
      {
        config: config(),
        logger,
        blueprintText: blueprint("clips/blue.mp4"),
        signal: new AbortController().signal,
        cpus: 1,
      },
      recorded(releases),
    );
    expect(outcome.status).toBe("completed");
    expect(outcome.exitCode).toBe(0);
    expect(releases).toEqual(["storage", "flush", "task lock", "database"]);
    expect((await row()).status).toBe("completed");
    expect((await row()).result).toMatchObject({ output_path: "output/run.mp4", width: 320, height: 240 });
    const stages = lines.filter((line) => line.message.startsWith("Stage ")).map((line) => line.message);
    expect(stages).toEqual([
      "Stage validation done",
      "Stage assembling done",
      "Stage fetching done",
      "Stage rendering done",
      "Stage uploading done",
      "Stage cleanup done",
    ]);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it("a failing stage records the failure once and still releases everything", async () => {
    const releases: string[] = [];
    const { logger } = captureLogs();
    const outcome = await runJob(
      {
        config: config(),
        logger,
        blueprintText: blueprint("clips/missing.mp4"),
        signal: new AbortController().signal,
        cpus: 1,
      },
      recorded(releases),
    );
    expect(outcome).toMatchObject({ status: "failed", exitCode: 1, recorded: true });
    expect(outcome.status === "failed" && outcome.error.code).toBe("STORAGE_NOT_FOUND");
    expect(releases).toEqual(["storage", "flush", "task lock", "database"]);
    const failed = await row();
    expect(failed.status).toBe("failed");
    expect(failed.stage).toBe("fetching");
    expect(readdirSync(tmp)).toEqual([]);
  });

  it("a database that cannot be opened fails the run (exit 1) with nothing to release", async () => {
    const releases: string[] = [];
    const { logger, lines } = captureLogs();
    const dependencies: JobDependencies = {
      ...recorded(releases),
      openTasks: () => Promise.reject(new Error("connection refused")),
    };
    const outcome = await runJob(
      { config: config(), logger, blueprintText: blueprint(), signal: new AbortController().signal, cpus: 1 },
      dependencies,
    );
    expect(outcome).toMatchObject({ status: "failed", exitCode: 1, recorded: false });
    expect(releases).toEqual([]);
    expect(lines.some((line) => line.severity === "ERROR" && line.message.startsWith("Job failed"))).toBe(
      true,
    );
    expect((await row()).status).toBe("pending");
  });
});
