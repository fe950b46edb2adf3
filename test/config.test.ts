import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig, parseConfig, readEnvironment } from "../src/config.js";
import { JobError } from "../src/errors.js";

describe("parseConfig", () => {
  it("applies the documented defaults to an empty environment", () => {
    const result = parseConfig({}, "/srv/job");
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const { config } = result;
    expect(config.gcsBucket).toBeUndefined();
    expect(config.localStorageRoot).toBe("/srv/job");
    expect(config.db.port).toBe(5432);
    expect(config.dbConfigured).toBe(false);
    expect(config.defaults).toEqual({
      output_format: "mp4",
      video_codec: "libx264",
      audio_codec: "aac",
      audio_bitrate: "128k",
      crf: 23,
      preset: "veryfast",
      frame_rate: 30,
      gcs_bucket: undefined,
    });
    expect(config.logLevel).toBe("info");
    expect(config.fetchConcurrency).toBe(8);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("treats empty variables as unset", () => {
    const result = parseConfig({ GCS_BUCKET_NAME: "", VIDEO_CRF: " ", BLUEPRINT_JSON: "" }, "/x");
    expect(result.ok && result.config.gcsBucket).toBe(undefined);
    expect(result.ok && result.config.defaults.crf).toBe(23);
    expect(result.ok && result.config.blueprintJson).toBe(undefined);
  });

  it("reports every problem at once, naming the variable and the value", () => {
    const result = parseConfig({
      VIDEO_CRF: "80",
      VIDEO_CODEC: "h264_nvenc",
      DB_PORT: "fifty",
      LOG_LEVEL: "loud",
      AUDIO_BITRATE: "128k -vf evil",
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues.map((issue) => issue.variable).sort()).toEqual([
      "AUDIO_BITRATE",
      "DB_PORT",
      "LOG_LEVEL",
      "VIDEO_CODEC",
      "VIDEO_CRF",
    ]);
    expect(result.issues.find((issue) => issue.variable === "VIDEO_CRF")?.message).toContain('"80"');
  });

  it("lists FETCH_CONCURRENCY, CLIP_CACHE and TASK_ID problems with the others", () => {
    const result = parseConfig({
      VIDEO_CRF: "80",
      FETCH_CONCURRENCY: "abc",
      CLIP_CACHE: "maybe",
      TASK_ID: "x".repeat(37),
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues.map((issue) => issue.variable).sort()).toEqual([
      "CLIP_CACHE",
      "FETCH_CONCURRENCY",
      "TASK_ID",
      "VIDEO_CRF",
    ]);
    const nul = parseConfig({ TASK_ID: "abc\u0000" });
    expect(nul.ok).toBe(false);
  });

  it("allows CRF up to 63 for VP9 only", () => {
    expect(parseConfig({ VIDEO_CODEC: "libvpx-vp9", VIDEO_CRF: "60" }).ok).toBe(true);
    expect(parseConfig({ VIDEO_CODEC: "libx264", VIDEO_CRF: "60" }).ok).toBe(false);
  });

  it("maps Python log level names and pino names", () => {
    const level = (LOG_LEVEL: string) => {
      const result = parseConfig({ LOG_LEVEL });
      return result.ok ? result.config.logLevel : "invalid";
    };
    expect(level("WARNING")).toBe("warn");
    expect(level("critical")).toBe("fatal");
    expect(level("Debug")).toBe("debug");
    expect(level("trace")).toBe("trace");
  });

  it("connects over the Cloud SQL socket when CLOUD_SQL_CONNECTION_NAME is set", () => {
    const result = parseConfig({
      CLOUD_SQL_CONNECTION_NAME: "proj:us-central1:main",
      DB_NAME: "bachata",
      DB_USER: "postgres",
      DB_PASSWORD: "secret",
    });
    expect(result.ok && result.config.db.host).toBe("/cloudsql/proj:us-central1:main");
  });

  it("refuses a missing database on Cloud Run and lists what is missing", () => {
    const result = parseConfig({ CLOUD_RUN_JOB: "video-processor" });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues[0]?.message).toMatch(/DB_HOST.*DB_NAME.*DB_USER/);
  });

  it("takes the data directory from LOCAL_STORAGE_ROOT, else from LOCAL_STORAGE_PATH (the Python job's name)", () => {
    const root = (env: Record<string, string>) => {
      const result = parseConfig(env, "/srv/job");
      return result.ok ? result.config.localStorageRoot : undefined;
    };
    expect(root({ LOCAL_STORAGE_PATH: "/app/data" })).toBe("/app/data");
    expect(root({ LOCAL_STORAGE_PATH: "data" })).toBe("/srv/job/data");
    expect(root({ LOCAL_STORAGE_ROOT: "/mnt/media", LOCAL_STORAGE_PATH: "/app/data" })).toBe("/mnt/media");
    expect(root({ LOCAL_STORAGE_ROOT: "", LOCAL_STORAGE_PATH: "/app/data" })).toBe("/app/data");
  });

  it("reads CREATE_MISSING_TASK (off by default) and refuses it on Cloud Run", () => {
    const flag = (env: Record<string, string>) => {
      const result = parseConfig(env, "/x");
      return result.ok ? result.config.createMissingTask : result.issues;
    };
    expect(flag({})).toBe(false);
    expect(flag({ CREATE_MISSING_TASK: "on" })).toBe(true);
    expect(flag({ CREATE_MISSING_TASK: "off" })).toBe(false);
    expect(flag({ CREATE_MISSING_TASK: "maybe" })).toEqual([
      { variable: "CREATE_MISSING_TASK", message: 'expected on or off, found "maybe"' },
    ]);
    const cloudRun = {
      CLOUD_RUN_JOB: "video-processor",
      DB_HOST: "/cloudsql/p:r:i",
      DB_NAME: "d",
      DB_USER: "u",
    };
    expect(flag({ ...cloudRun, CREATE_MISSING_TASK: "off" })).toBe(false);
    expect(flag({ ...cloudRun, CREATE_MISSING_TASK: "on" })).toEqual([
      {
        variable: "CREATE_MISSING_TASK",
        message: "must be off on Cloud Run (CLOUD_RUN_JOB is set): the API creates the task row there",
      },
    ]);
  });

  it("refuses an incomplete database configuration", () => {
    const result = parseConfig({ DB_HOST: "db" });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues[0]?.message).toContain("DB_NAME, DB_USER");
  });

  it("never echoes the database password in an error", () => {
    const result = parseConfig({ DB_PASSWORD: "hunter2-secret", DB_PORT: "x" });
    expect(JSON.stringify(result)).not.toContain("hunter2");
    if (!result.ok) expect(result.issues.map((issue) => issue.message).join()).not.toContain("hunter2");
  });

  it("loadConfig throws one INVALID_CONFIG error that exits with 2", () => {
    try {
      loadConfig({ VIDEO_FPS: "0", USER_ID: "abc" });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(JobError);
      expect((err as JobError).code).toBe("INVALID_CONFIG");
      expect((err as JobError).exitCode).toBe(2);
      expect((err as JobError).message).toContain("VIDEO_FPS");
      expect((err as JobError).message).toContain("USER_ID");
    }
  });
});

describe("readEnvironment", () => {
  it("loads .env quietly and lets real variables win", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "config-test-"));
    writeFileSync(path.join(dir, ".env"), "VIDEO_CRF=30\nVIDEO_FPS=25\n");
    const env = readEnvironment(dir, { VIDEO_FPS: "60" });
    expect(env["VIDEO_CRF"]).toBe("30");
    expect(env["VIDEO_FPS"]).toBe("60");
  });
});
