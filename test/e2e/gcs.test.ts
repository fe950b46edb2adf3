/**
 * The job in GCS mode as Cloud Run runs it: the built CLI, env vars only, the real
 * @google-cloud/storage client (in the child) against the in-process GCS emulator, real PostgreSQL.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Storage } from "@google-cloud/storage";
import type pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { makeClip, makeSong } from "../helpers/fixtures.js";
import { EMULATOR_PROJECT_ID, type GcsEmulator, startGcsEmulator } from "../helpers/gcs-emulator.js";
import { probeVideo } from "../helpers/measure.js";
import { resetTasks, startPostgres, type TestPostgres, taskRow } from "../helpers/postgres.js";

const BUCKET = "e2e-media";
const TASK_ID = "5d0e7c1a-0000-4000-8000-00000000gcs1";
const USER_ID = 11;

let emulator: GcsEmulator;
let postgres: TestPostgres;
let pool: pg.Pool;
let storage: Storage;
let work: string;
let tmp: string;

function blueprint(clipKeys: string[], outputPath: string) {
  return {
    task_id: TASK_ID,
    audio_path: "songs/song.m4a",
    moves: clipKeys.map((key, index) => ({
      video_path: key,
      start_time: index,
      duration: 1,
      transition_type: index === 0 ? "cut" : "crossfade",
    })),
    total_duration: clipKeys.length,
    output_config: { output_path: outputPath, frame_rate: 30, transition_duration: 0.4 },
  };
}

function env(blueprintJson: string): Record<string, string> {
  return {
    TMPDIR: tmp,
    TASK_ID,
    USER_ID: String(USER_ID),
    BLUEPRINT_JSON: blueprintJson,
    GCS_BUCKET_NAME: BUCKET,
    GCP_PROJECT_ID: EMULATOR_PROJECT_ID,
    STORAGE_EMULATOR_HOST: emulator.host,
    DB_HOST: postgres.config.host,
    DB_PORT: String(postgres.config.port),
    DB_NAME: postgres.config.name,
    DB_USER: postgres.config.user,
    DB_PASSWORD: postgres.config.password,
  };
}

async function row() {
  return (await taskRow(pool, TASK_ID))!;
}

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "e2e-gcs-"));
  tmp = mkdtempSync(path.join(os.tmpdir(), "e2e-gcs-tmp-"));
  [emulator, postgres] = await Promise.all([startGcsEmulator(), startPostgres()]);
  pool = postgres.pool;
  process.env["STORAGE_EMULATOR_HOST"] = emulator.host;
  storage = new Storage({ projectId: EMULATOR_PROJECT_ID });
  makeSong(path.join(work, "song.m4a"), 3);
  makeClip(path.join(work, "red.mp4"), "red", 2);
  makeClip(path.join(work, "blue.mp4"), "blue", 2, "240x320", 25);
  const bucket = storage.bucket(BUCKET);
  await bucket.upload(path.join(work, "song.m4a"), { destination: "songs/song.m4a" });
  await bucket.upload(path.join(work, "red.mp4"), { destination: "clips/red.mp4" });
  await bucket.upload(path.join(work, "blue.mp4"), { destination: "clips/blue.mp4" });
});

afterAll(async () => {
  await postgres?.stop();
  await emulator?.stop();
  rmSync(work, { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
});

beforeEach(async () => {
  await resetTasks(pool, TASK_ID, USER_ID);
});

describe("the job in GCS mode", () => {
  it("downloads each clip once, renders, uploads with metadata and records gs:// in the row", async () => {
    const text = JSON.stringify(
      blueprint(
        ["clips/red.mp4", "clips/blue.mp4", `gs://${BUCKET}/clips/red.mp4`, "clips/blue.mp4"],
        "out/gcs.mp4",
      ),
    );
    const result = await runCli({ env: env(text) });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);

    const task = await row();
    expect(task.status).toBe("completed");
    expect(task.result).toMatchObject({
      video_url: `gs://${BUCKET}/out/gcs.mp4`,
      output_path: "out/gcs.mp4",
      moves_count: 4,
      num_moves: 4,
      width: 320,
      height: 240,
    });

    const file = storage.bucket(BUCKET).file("out/gcs.mp4");
    const [metadata] = await file.getMetadata();
    expect(metadata.contentType).toBe("video/mp4");
    expect(metadata.metadata).toMatchObject({
      task_id: TASK_ID,
      blueprint_sha256: createHash("sha256").update(text).digest("hex"),
    });
    const local = path.join(work, "downloaded.mp4");
    await file.download({ destination: local });
    const video = probeVideo(local);
    expect(video.frames).toBe(120);
    expect(Math.abs(video.videoDuration - video.audioDuration)).toBeLessThan(1 / 30);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it("fails with exit 1 naming the missing key, and uploads nothing", async () => {
    const result = await runCli({
      env: env(JSON.stringify(blueprint(["clips/red.mp4", "clips/nowhere.mp4"], "out/missing.mp4"))),
    });
    expect(result.code).toBe(1);
    const task = await row();
    expect(task.status).toBe("failed");
    expect(task.stage).toBe("fetching");
    expect(String(task.error)).toContain("clips/nowhere.mp4");
    expect(task.result).toMatchObject({ code: "STORAGE_NOT_FOUND", stage: "fetching", retryable: false });
    const [exists] = await storage.bucket(BUCKET).file("out/missing.mp4").exists();
    expect(exists).toBe(false);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it("rejects another bucket's gs:// URL before touching storage (exit 2)", async () => {
    const result = await runCli({
      env: env(
        JSON.stringify(blueprint(["clips/red.mp4", "gs://someone-else/clips/red.mp4"], "out/other.mp4")),
      ),
    });
    expect(result.code).toBe(2);
    const task = await row();
    expect(task.status).toBe("failed");
    expect(String(task.error)).toContain("moves[1].video_path");
    expect(task.result).toMatchObject({ code: "INVALID_BLUEPRINT" });
  });
});
