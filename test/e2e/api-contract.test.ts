/**
 * The real client's contract, through the real CLI: blueprints shaped exactly like the API generator's output
 * (and the product README's manual example), media laid out like the API's data directory, and a real
 * PostgreSQL holding the API's own table (Django's DDL: no database-side defaults, a foreign key to the user
 * table) with no task row created beforehand — CREATE_MISSING_TASK=on, as the compose service runs it.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { API_CLIPS, apiContractBlueprint, SEED_MANUAL_EXAMPLE } from "../helpers/blueprints.js";
import { ROOT, type Run, runCli } from "../helpers/cli.js";
import { makeClip } from "../helpers/fixtures.js";
import { probeVideo } from "../helpers/measure.js";
import { startPostgres, type TestPostgres } from "../helpers/postgres.js";

const USER_ID = 1;
const TASK_ID = "5f0c4a8e-1d2b-4c3a-9e8f-7a6b5c4d3e2f";

/** The API's table as its Django migrations create it (0001, 0003 and 0006 applied), and its user table. */
const API_DDL = `
drop table if exists choreography_tasks;
create table users (id bigint primary key, username varchar(150) not null);
create table songs (id bigint primary key, title varchar(200) not null);
create table choreography_tasks (
  task_id varchar(36) not null primary key,
  status varchar(20) not null,
  progress integer not null,
  stage varchar(50) not null,
  message text not null,
  result jsonb null,
  error text null,
  created_at timestamp with time zone not null,
  updated_at timestamp with time zone not null,
  user_id bigint not null references users (id) deferrable initially deferred,
  song_id bigint null references songs (id) deferrable initially deferred
);
create index choreograph_user_id_1f71cb_idx on choreography_tasks (user_id, status);
create index choreograph_created_1c4810_idx on choreography_tasks (created_at);
insert into users (id, username) values (1, 'dancer');
`;

let postgres: TestPostgres;
let pool: pg.Pool;
/** The API's data directory (its /app/data). */
let data: string;
let tmp: string;

function ffmpeg(args: string[]): void {
  execFileSync("ffmpeg", ["-hide_banner", "-v", "error", "-y", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
}

/** An MP3 song, as the API's library holds them. */
function makeMp3(file: string, seconds: number): void {
  mkdirSync(path.dirname(file), { recursive: true });
  ffmpeg([
    "-f",
    "lavfi",
    "-i",
    `sine=f=440:d=${seconds}:sample_rate=44100`,
    "-ac",
    "2",
    "-c:a",
    "libmp3lame",
    file,
  ]);
}

function dbEnv(): Record<string, string> {
  return {
    DB_HOST: postgres.config.host,
    DB_PORT: String(postgres.config.port),
    DB_NAME: postgres.config.name,
    DB_USER: postgres.config.user,
    DB_PASSWORD: postgres.config.password,
  };
}

function run(env: Record<string, string | undefined>): Promise<Run> {
  return runCli({ env: { TMPDIR: tmp, ...dbEnv(), ...env }, killAfterMs: 240_000 });
}

async function row(taskId: string) {
  const { rows } = await pool.query("select * from choreography_tasks where task_id = $1", [taskId]);
  return rows[0] as (Record<string, unknown> & { result: Record<string, unknown> | null }) | undefined;
}

beforeAll(async () => {
  data = mkdtempSync(path.join(os.tmpdir(), "api-data-"));
  tmp = mkdtempSync(path.join(os.tmpdir(), "api-tmp-"));
  makeMp3(path.join(data, "songs", "Eso_es_amor.mp3"), 9);
  makeMp3(path.join(data, "songs", "test.mp3"), 16);
  const colours = ["red", "blue", "green", "yellow", "purple", "orange", "cyan", "magenta"];
  API_CLIPS.forEach((clip, index) => {
    const key = clip.video_path.replace(/^data\//, "");
    makeClip(path.join(data, key), colours[index]!, clip.duration, "160x120");
  });
  makeClip(path.join(data, "Bachata_steps", "basic_steps", "basic_1.mp4"), "white", 8, "160x120");
  makeClip(path.join(data, "Bachata_steps", "body_roll", "body_roll_1.mp4"), "gray", 8, "160x120");
  postgres = await startPostgres();
  pool = postgres.pool;
  await pool.query(API_DDL);
}, 120_000);

afterAll(async () => {
  await postgres?.stop();
  rmSync(data, { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
});

beforeEach(async () => {
  await pool.query("delete from choreography_tasks");
});

describe("the API's generator output, in the API's data layout, no task row beforehand", () => {
  it("renders a four-section blueprint with 0.046 s and 0.00025 s remainders where the API serves it", async () => {
    const blueprint = apiContractBlueprint(TASK_ID, USER_ID);
    expect(await row(TASK_ID)).toBeUndefined();
    const result = await run({
      TASK_ID,
      USER_ID: String(USER_ID),
      BLUEPRINT_JSON: JSON.stringify(blueprint),
      LOCAL_STORAGE_ROOT: data,
      CREATE_MISSING_TASK: "on",
    });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.logs.some((line) => String(line["message"]).includes("CREATE_MISSING_TASK=on"))).toBe(true);

    const task = await row(TASK_ID);
    expect(task).toMatchObject({ status: "completed", progress: 100, stage: "completed", user_id: "1" });
    const outputKey = `output/user_${USER_ID}/choreography_${TASK_ID}.mp4`;
    const file = path.join(data, outputKey);
    expect(task!.result).toMatchObject({
      video_url: `file://${file}`,
      output_path: outputKey,
      moves_count: 8,
      num_moves: 8,
      total_duration: 8.2,
      fps: 30,
    });
    const warnings = task!.result!["warnings"] as string[];
    expect(warnings.filter((warning) => warning.includes("shorter than 2 frames"))).toHaveLength(3);
    expect(warnings.join("\n")).toContain("lasts 0.00025 s");
    // round(8.184 · 30) = 246 frames, whatever was absorbed.
    const probed = probeVideo(file);
    expect(probed.frames).toBe(246);
    expect(Math.abs(probed.audioDuration - probed.videoDuration)).toBeLessThan(1 / 30);
    expect(readdirSync(tmp)).toEqual([]);
  });
});

describe("the product README's manual flow (compose: ./data at the data directory)", () => {
  it("ships that README's example blueprint verbatim in examples/", () => {
    const example = readFileSync(path.join(ROOT, "examples", "manual-test.blueprint.json"), "utf8");
    expect(JSON.parse(example)).toEqual(JSON.parse(SEED_MANUAL_EXAMPLE));
  });

  it("renders it with TASK_ID=test-123 USER_ID=1, creating the row; LOCAL_STORAGE_PATH names the data directory", async () => {
    const text = readFileSync(path.join(ROOT, "examples", "manual-test.blueprint.json"), "utf8");
    const result = await run({
      TASK_ID: "test-123",
      USER_ID: "1",
      BLUEPRINT_JSON: text,
      LOCAL_STORAGE_PATH: data,
      CREATE_MISSING_TASK: "on",
    });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    // data/output/test_choreography.mp4 in the blueprint: ./data/output/test_choreography.mp4 on the host.
    const file = path.join(data, "output", "test_choreography.mp4");
    expect(existsSync(file)).toBe(true);
    expect(probeVideo(file).frames).toBe(480);
    const task = await row("test-123");
    expect(task).toMatchObject({ status: "completed", user_id: "1" });
    expect(task!.result).toMatchObject({
      output_path: "output/test_choreography.mp4",
      video_url: `file://${file}`,
      total_duration: 16,
    });
  });

  it("without CREATE_MISSING_TASK a missing row is still an error (the API owns it)", async () => {
    const text = readFileSync(path.join(ROOT, "examples", "manual-test.blueprint.json"), "utf8");
    const result = await run({ TASK_ID: "test-123", BLUEPRINT_JSON: text, LOCAL_STORAGE_ROOT: data });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("Task test-123 not found");
    expect(await row("test-123")).toBeUndefined();
  });
});

describe("permanent failures do not burn Cloud Run retries", () => {
  const invalid = JSON.stringify({ ...apiContractBlueprint(TASK_ID, USER_ID), audio_path: "../secret.mp3" });
  const cloudRun = (attempt: number) => ({
    CLOUD_RUN_JOB: "video-processor",
    CLOUD_RUN_EXECUTION: "video-processor-abc12",
    CLOUD_RUN_TASK_INDEX: "0",
    CLOUD_RUN_TASK_ATTEMPT: String(attempt),
    TASK_ID,
    USER_ID: String(USER_ID),
    LOCAL_STORAGE_ROOT: data,
  });

  beforeEach(async () => {
    // On Cloud Run the API created the row.
    await pool.query(
      `insert into choreography_tasks (task_id, user_id, status, progress, stage, message, created_at, updated_at)
       values ($1, $2, 'started', 0, 'initializing', 'Starting choreography generation...', now(), now())`,
      [TASK_ID, USER_ID],
    );
  });

  it("attempt 0 records the failure with the blueprint's sha256; attempt 1 of the same blueprint stops at once, the row untouched", async () => {
    const first = await run({ ...cloudRun(0), BLUEPRINT_JSON: invalid });
    expect(first.code).toBe(2);
    const failed = await row(TASK_ID);
    expect(failed).toMatchObject({ status: "failed", stage: "validation" });
    expect(failed!.result).toMatchObject({ code: "INVALID_BLUEPRINT", retryable: false });
    expect(failed!.result!["blueprint_sha256"]).toMatch(/^[0-9a-f]{64}$/);

    const retry = await run({ ...cloudRun(1), BLUEPRINT_JSON: invalid });
    expect(retry.code).toBe(2);
    expect(retry.stdout).toContain("recorded permanent failure");
    expect(await row(TASK_ID)).toEqual(failed);

    // Another blueprint on a retry is judged afresh (and recorded).
    const other = JSON.stringify({ ...apiContractBlueprint(TASK_ID, USER_ID), audio_path: "/etc/passwd" });
    const retryOther = await run({ ...cloudRun(2), BLUEPRINT_JSON: other });
    expect(retryOther.code).toBe(2);
    const again = await row(TASK_ID);
    expect(again!.error).toContain("/etc/passwd");
    expect(again!.result!["blueprint_sha256"]).not.toBe(failed!.result!["blueprint_sha256"]);
  });

  it("refuses CREATE_MISSING_TASK=on on Cloud Run before touching anything", async () => {
    const before = await row(TASK_ID);
    const result = await run({ ...cloudRun(0), CREATE_MISSING_TASK: "on", BLUEPRINT_JSON: invalid });
    expect(result.code).toBe(2);
    expect(result.stdout + result.stderr).toContain("CREATE_MISSING_TASK");
    expect(await row(TASK_ID)).toEqual(before);
  });
});
