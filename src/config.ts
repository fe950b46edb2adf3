import { existsSync } from "node:fs";
import path from "node:path";
import dotenv from "dotenv";
import {
  AUDIO_CODECS,
  type AudioCodec,
  type BlueprintDefaults,
  OUTPUT_FORMATS,
  type OutputFormat,
  type Preset,
  VIDEO_CODECS,
  type VideoCodec,
  X26X_PRESETS,
} from "./blueprint/types.js";
import { JobError } from "./errors.js";

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

export interface DatabaseConfig {
  /** Host name, or a unix-socket directory (starts with `/`). Unset when no database is configured. */
  host?: string;
  port: number;
  name?: string;
  user?: string;
  password?: string;
}

export interface Config {
  blueprintJson?: string;
  taskId?: string;
  userId?: number;
  db: DatabaseConfig;
  /** True when any DB_* / CLOUD_SQL_CONNECTION_NAME variable was given. */
  dbConfigured: boolean;
  /** Set → GCS mode with that bucket; unset → local mode. */
  gcsBucket?: string;
  gcpProjectId?: string;
  gcpRegion?: string;
  /** Absolute data directory every local storage key is relative to (LOCAL_STORAGE_ROOT or LOCAL_STORAGE_PATH). */
  localStorageRoot: string;
  /** CREATE_MISSING_TASK: insert a missing task row as `pending` (compose / manual runs; never on Cloud Run). */
  createMissingTask: boolean;
  defaults: BlueprintDefaults;
  logLevel: LogLevel;
  logFormat: "json" | "pretty";
  ffmpegPath: string;
  ffprobePath: string;
  /** How many storage downloads run at once. */
  fetchConcurrency: number;
  /** Normalised-clip cache (SPEC §7 performance issue): on by default. */
  clipCache: boolean;
  clipCachePrefix: string;
  /** VERIFY_DECODE: decode only what the run encoded plus every join ("partial"), or the whole output. */
  verifyDecode: "full" | "partial";
  cloudRun: {
    job?: string;
    execution?: string;
    taskIndex?: string;
    /** CLOUD_RUN_TASK_COUNT: tasks of the execution (warm-cache shards the library by it). */
    taskCount?: string;
    taskAttempt?: string;
  };
}

export interface ConfigIssue {
  variable: string;
  message: string;
}

export type Env = Readonly<Record<string, string | undefined>>;

const LOG_LEVELS: Record<string, LogLevel> = {
  debug: "debug",
  info: "info",
  warning: "warn",
  warn: "warn",
  error: "error",
  critical: "fatal",
  fatal: "fatal",
  trace: "trace",
  silent: "silent",
};

/** Reads `.env` (if present) under the real environment: real variables win (SPEC §2). */
export function readEnvironment(cwd = process.cwd(), processEnv: Env = process.env): Env {
  const fromFile: Record<string, string> = {};
  const file = path.join(cwd, ".env");
  if (existsSync(file)) dotenv.config({ path: file, processEnv: fromFile, quiet: true });
  return { ...fromFile, ...processEnv };
}

/** Empty counts as unset (SPEC §2). */
function value(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined) return undefined;
  const trimmed = raw.trim();
  return trimmed === "" ? undefined : trimmed;
}

/**
 * Environment → typed, frozen Config. Collects every problem before failing, naming each variable
 * and the value it had (never for secrets).
 */
export function parseConfig(
  env: Env,
  cwd = process.cwd(),
  /** `database: false`: a mode that never opens the task database (warm-cache) does not require its settings. */
  options: { database?: boolean } = {},
): { ok: true; config: Config } | { ok: false; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const problem = (variable: string, message: string) => issues.push({ variable, message });

  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = value(env, name);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problem(name, `expected an integer from ${min} to ${max}, found ${JSON.stringify(raw)}`);
      return fallback;
    }
    return Number(raw);
  };
  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const raw = value(env, name);
    if (raw === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      problem(name, `expected one of ${allowed.join(", ")}, found ${JSON.stringify(raw)}`);
      return fallback;
    }
    return raw as T;
  };
  const flag = (name: string, fallback: boolean): boolean => {
    const raw = value(env, name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (["1", "true", "on", "yes"].includes(raw)) return true;
    if (["0", "false", "off", "no"].includes(raw)) return false;
    problem(name, `expected on or off, found ${JSON.stringify(raw)}`);
    return fallback;
  };

  const cloudSql = value(env, "CLOUD_SQL_CONNECTION_NAME");
  if (cloudSql !== undefined && !/^[^:/\s]+:[^:/\s]+:[^:/\s]+$/.test(cloudSql)) {
    problem(
      "CLOUD_SQL_CONNECTION_NAME",
      `expected PROJECT:REGION:INSTANCE, found ${JSON.stringify(cloudSql)}`,
    );
  }
  const dbHost = cloudSql !== undefined ? `/cloudsql/${cloudSql}` : value(env, "DB_HOST");
  const db: DatabaseConfig = {
    host: dbHost,
    port: integer("DB_PORT", 5432, 1, 65535),
    name: value(env, "DB_NAME"),
    user: value(env, "DB_USER"),
    password: env["DB_PASSWORD"] === "" ? undefined : env["DB_PASSWORD"],
  };
  const dbConfigured = ["DB_HOST", "DB_NAME", "DB_USER", "DB_PASSWORD", "CLOUD_SQL_CONNECTION_NAME"].some(
    (name) => value(env, name) !== undefined,
  );

  const videoCodec = oneOf<VideoCodec>("VIDEO_CODEC", VIDEO_CODECS, "libx264");
  const crfMax = videoCodec === "libvpx-vp9" ? 63 : 51;
  const crf = integer("VIDEO_CRF", 23, 0, crfMax);
  const audioBitrate = value(env, "AUDIO_BITRATE") ?? "128k";
  if (!/^[1-9][0-9]*(\.[0-9]+)?[kKmM]?$/.test(audioBitrate)) {
    problem("AUDIO_BITRATE", `expected a bitrate like 128k, found ${JSON.stringify(audioBitrate)}`);
  }
  const defaults: BlueprintDefaults = {
    output_format: oneOf<OutputFormat>("VIDEO_OUTPUT_FORMAT", OUTPUT_FORMATS, "mp4"),
    video_codec: videoCodec,
    audio_codec: oneOf<AudioCodec>("AUDIO_CODEC", AUDIO_CODECS, "aac"),
    audio_bitrate: audioBitrate,
    crf,
    preset: oneOf<Preset>("VIDEO_PRESET", X26X_PRESETS, "veryfast"),
    frame_rate: integer("VIDEO_FPS", 30, 1, 120),
    gcs_bucket: value(env, "GCS_BUCKET_NAME"),
  };

  const rawLevel = value(env, "LOG_LEVEL")?.toLowerCase() ?? "info";
  const logLevel = LOG_LEVELS[rawLevel];
  if (logLevel === undefined) {
    problem(
      "LOG_LEVEL",
      `expected DEBUG, INFO, WARNING, ERROR or CRITICAL, found ${JSON.stringify(rawLevel)}`,
    );
  }
  const logFormat = oneOf<"json" | "pretty">(
    "LOG_FORMAT",
    ["json", "pretty"],
    process.stdout.isTTY ? "pretty" : "json",
  );

  const rawUserId = value(env, "USER_ID");
  let userId: number | undefined;
  if (rawUserId !== undefined) {
    if (/^\d{1,15}$/.test(rawUserId)) userId = Number(rawUserId);
    else problem("USER_ID", `expected a numeric user id, found ${JSON.stringify(rawUserId)}`);
  }
  const taskId = value(env, "TASK_ID");
  if (taskId !== undefined && (taskId.length > 36 || /[\u0000-\u001f\u007f-\u009f]/.test(taskId))) {
    problem("TASK_ID", "expected at most 36 characters without control characters");
  }

  const bucket = defaults.gcs_bucket;
  if (bucket !== undefined && !/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(bucket)) {
    problem("GCS_BUCKET_NAME", `expected a bucket name, found ${JSON.stringify(bucket)}`);
  }

  const cloudRunJob = value(env, "CLOUD_RUN_JOB");
  const createMissingTask = flag("CREATE_MISSING_TASK", false);
  if (createMissingTask && cloudRunJob !== undefined) {
    problem(
      "CREATE_MISSING_TASK",
      "must be off on Cloud Run (CLOUD_RUN_JOB is set): the API creates the task row there",
    );
  }
  if (cloudRunJob !== undefined && !dbConfigured && options.database !== false) {
    problem(
      "DB_HOST",
      "database settings are required on Cloud Run: set DB_HOST (or CLOUD_SQL_CONNECTION_NAME), DB_NAME, DB_USER, DB_PASSWORD",
    );
  } else if (dbConfigured) {
    const missing = [
      dbHost === undefined ? "DB_HOST (or CLOUD_SQL_CONNECTION_NAME)" : undefined,
      db.name === undefined ? "DB_NAME" : undefined,
      db.user === undefined ? "DB_USER" : undefined,
    ].filter((name): name is string => name !== undefined);
    if (missing.length > 0)
      problem(missing[0]!.split(" ")[0]!, `database settings incomplete, missing: ${missing.join(", ")}`);
  }

  // Read before the problems are returned, so theirs are listed with the others.
  const fetchConcurrency = integer("FETCH_CONCURRENCY", 8, 1, 64);
  const clipCache = flag("CLIP_CACHE", true);
  const verifyDecode = oneOf<"full" | "partial">("VERIFY_DECODE", ["full", "partial"], "partial");

  if (issues.length > 0) return { ok: false, issues };
  const config: Config = {
    blueprintJson:
      env["BLUEPRINT_JSON"] !== undefined && env["BLUEPRINT_JSON"].trim() !== ""
        ? env["BLUEPRINT_JSON"]
        : undefined,
    taskId,
    userId,
    db,
    dbConfigured,
    gcsBucket: bucket,
    gcpProjectId: value(env, "GCP_PROJECT_ID"),
    gcpRegion: value(env, "GCP_REGION"),
    // LOCAL_STORAGE_PATH is the Python job's name for the same directory.
    localStorageRoot: path.resolve(
      cwd,
      value(env, "LOCAL_STORAGE_ROOT") ?? value(env, "LOCAL_STORAGE_PATH") ?? ".",
    ),
    createMissingTask,
    defaults,
    logLevel: logLevel ?? "info",
    logFormat,
    ffmpegPath: value(env, "FFMPEG_PATH") ?? "ffmpeg",
    ffprobePath: value(env, "FFPROBE_PATH") ?? "ffprobe",
    fetchConcurrency,
    clipCache,
    clipCachePrefix: value(env, "CLIP_CACHE_PREFIX") ?? ".clip-cache",
    verifyDecode,
    cloudRun: {
      job: cloudRunJob,
      execution: value(env, "CLOUD_RUN_EXECUTION"),
      taskIndex: value(env, "CLOUD_RUN_TASK_INDEX"),
      taskCount: value(env, "CLOUD_RUN_TASK_COUNT"),
      taskAttempt: value(env, "CLOUD_RUN_TASK_ATTEMPT"),
    },
  };
  return { ok: true, config: Object.freeze(config) };
}

/** Like parseConfig, but throws one INVALID_CONFIG JobError listing every problem. */
export function loadConfig(env: Env, cwd = process.cwd(), options: { database?: boolean } = {}): Config {
  const result = parseConfig(env, cwd, options);
  if (result.ok) return result.config;
  const lines = result.issues.map((issue) => `${issue.variable}: ${issue.message}`);
  throw new JobError(`Invalid configuration: ${lines.join("; ")}`, {
    code: "INVALID_CONFIG",
    details: result.issues,
  });
}
