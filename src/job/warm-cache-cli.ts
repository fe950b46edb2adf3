/**
 * `video-assembly-job warm-cache --prefix KEY_PREFIX [--resolution WxH] [--fps N] [--shards N]`:
 * argument parsing, the shard from CLOUD_RUN_TASK_INDEX/CLOUD_RUN_TASK_COUNT, `--shards N` as N local
 * processes, the summary and the exit code (0 every clip of the share has a verified entry, 1 some
 * clip failed or the run was stopped, 2 bad arguments or configuration).
 */
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import { checkStorageKey } from "../blueprint/paths.js";
import { type Env, loadConfig } from "../config.js";
import { readGrantedCpus } from "../cpus.js";
import { coerceError, JobError } from "../errors.js";
import { createLogger, type Logger } from "../log.js";
import { createStorage } from "../storage/index.js";
import { checkWarmOptions, type WarmCacheOptions, warmCache } from "./warm-cache.js";

export const WARM_USAGE = `Usage: video-assembly-job warm-cache --prefix KEY_PREFIX [--resolution WxH] [--fps N] [--shards N] [--jobs N]

Normalises every clip under KEY_PREFIX into the clip cache (CLIP_CACHE_PREFIX) for one output
profile, so jobs at that profile find every clip cached. Encoder settings (VIDEO_PRESET, VIDEO_CRF,
VIDEO_FPS) and storage (GCS_BUCKET_NAME or LOCAL_STORAGE_ROOT) come from the environment, as for a job.
Verified entries are left alone; run it again to resume. On Cloud Run each task of an execution takes
the share CLOUD_RUN_TASK_INDEX of CLOUD_RUN_TASK_COUNT. Exit codes: 0 every clip of the share has a
verified entry, 1 some clip failed, 2 invalid arguments or configuration.

Options:
  --prefix KEY_PREFIX  the library: every clip (.mp4 .m4v .mov .mkv .webm .avi .ts .mts) below it
  --resolution WxH     output size as the jobs' output_config.resolution (default: each clip's own size,
                       as in a job whose first move it is)
  --fps N              output frame rate (default VIDEO_FPS)
  --shards N           run N processes here, one shard each (instead of CLOUD_RUN_TASK_COUNT)
  --jobs N             entries built at once in this process (default: the CPUs granted)`;

interface WarmCli {
  prefix: string;
  resolution?: string;
  fps?: number;
  shards?: number;
  jobs?: number;
}

function positiveInteger(name: string, raw: string | undefined, max: number): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    throw new TypeError(`${name} expects an integer from 1 to ${max}, found ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

/** argv after `warm-cache` → options; a TypeError with a usable message on bad usage. */
export function parseWarmCli(argv: readonly string[]): WarmCli & { help: boolean } {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      prefix: { type: "string" },
      resolution: { type: "string" },
      fps: { type: "string" },
      shards: { type: "string" },
      jobs: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help === true) return { prefix: "", help: true };
  const prefix = values.prefix?.trim();
  if (prefix === undefined || prefix === "") throw new TypeError("warm-cache needs --prefix KEY_PREFIX");
  const checked = checkStorageKey(prefix.replace(/\/+$/, ""));
  if (!checked.ok)
    throw new TypeError(`--prefix ${JSON.stringify(prefix)}: ${checked.reason} is not allowed`);
  const fps = positiveInteger("--fps", values.fps, 120);
  const shards = positiveInteger("--shards", values.shards, 64);
  const jobs = positiveInteger("--jobs", values.jobs, 64);
  return {
    prefix,
    help: false,
    ...(values.resolution === undefined ? {} : { resolution: values.resolution }),
    ...(fps === undefined ? {} : { fps }),
    ...(shards === undefined ? {} : { shards }),
    ...(jobs === undefined ? {} : { jobs }),
  };
}

/** The shard of this process: CLOUD_RUN_TASK_INDEX of CLOUD_RUN_TASK_COUNT (0 of 1 outside Cloud Run). */
export function shardFromEnv(taskIndex: string | undefined, taskCount: string | undefined) {
  const count = taskCount === undefined ? 1 : Number(taskCount);
  const index = taskIndex === undefined ? 0 : Number(taskIndex);
  if (!Number.isInteger(count) || count < 1) {
    throw new JobError(
      `CLOUD_RUN_TASK_COUNT must be a positive integer, found ${JSON.stringify(taskCount)}`,
      {
        code: "INVALID_CONFIG",
      },
    );
  }
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw new JobError(
      `CLOUD_RUN_TASK_INDEX must be an integer from 0 to ${count - 1}, found ${JSON.stringify(taskIndex)}`,
      { code: "INVALID_CONFIG" },
    );
  }
  return { index, count };
}

/** Runs `--shards N` as N child processes of this same CLI; the worst exit code wins (2 > 1 > 0). */
async function runShards(
  argv: readonly string[],
  shards: number,
  jobs: number,
  logger: Logger,
  signal: AbortSignal,
) {
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--shards" || arg === "--jobs") i += 1;
    else if (!arg.startsWith("--shards=") && !arg.startsWith("--jobs=")) rest.push(arg);
  }
  logger.info({ shards }, `Warm cache: running ${shards} shards here`);
  const codes = await Promise.all(
    Array.from(
      { length: shards },
      (_, index) =>
        new Promise<number>((resolve) => {
          const child = spawn(
            process.execPath,
            [process.argv[1]!, "warm-cache", ...rest, "--jobs", String(jobs)],
            {
              stdio: "inherit",
              env: {
                ...process.env,
                CLOUD_RUN_TASK_INDEX: String(index),
                CLOUD_RUN_TASK_COUNT: String(shards),
              },
            },
          );
          const stop = () => child.kill("SIGTERM");
          signal.addEventListener("abort", stop, { once: true });
          child.on("error", () => resolve(1));
          child.on("exit", (code) => {
            signal.removeEventListener("abort", stop);
            resolve(code ?? 1);
          });
        }),
    ),
  );
  return codes.includes(2) ? 2 : codes.some((code) => code !== 0) ? 1 : 0;
}

/** `warm-cache` as the CLI runs it; returns the exit code. */
export async function warmCacheMain(
  argv: readonly string[],
  env: Env,
  signal: AbortSignal,
  onLogger: (logger: Logger) => void = () => {},
): Promise<number> {
  let cli: ReturnType<typeof parseWarmCli>;
  try {
    cli = parseWarmCli(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${WARM_USAGE}\n`);
    return 2;
  }
  if (cli.help) {
    process.stdout.write(`${WARM_USAGE}\n`);
    return 0;
  }
  let config: ReturnType<typeof loadConfig>;
  let shard: { index: number; count: number };
  try {
    // The warm-cache mode never opens the task database.
    config = loadConfig(env, process.cwd(), { database: false });
    checkWarmOptions(config, cli);
    shard = shardFromEnv(config.cloudRun.taskIndex, config.cloudRun.taskCount);
  } catch (error) {
    process.stderr.write(`${coerceError(error).message}\n`);
    return 2;
  }
  const logger = createLogger({ level: config.logLevel, format: config.logFormat }).child({
    mode: "warm-cache",
    execution: config.cloudRun.execution,
    task_index: shard.index,
    attempt: config.cloudRun.taskAttempt,
  });
  onLogger(logger);
  const cpus = (await readGrantedCpus()).cpus;
  if (cli.shards !== undefined && cli.shards > 1) {
    return runShards(argv, cli.shards, Math.max(1, Math.floor(cpus / cli.shards)), logger, signal);
  }
  const options: WarmCacheOptions = {
    prefix: cli.prefix,
    shard,
    jobs: cli.jobs ?? cpus,
    ...(cli.resolution === undefined ? {} : { resolution: cli.resolution }),
    ...(cli.fps === undefined ? {} : { fps: cli.fps }),
  };
  const storage = createStorage(config, logger);
  const started = performance.now();
  try {
    const summary = await warmCache(storage, config, options, { logger, signal });
    const seconds = (performance.now() - started) / 1000;
    const normalised = summary.built;
    logger.info(
      {
        ...summary,
        seconds: Math.round(seconds * 10) / 10,
        clips_per_minute: normalised > 0 ? Math.round((normalised / seconds) * 600) / 10 : undefined,
      },
      `Warm cache done: ${summary.share} clips of this task's share — ${summary.built} built, ${summary.verified} verified, ${summary.rejected} rejected (rebuilt), ${summary.failed} failed`,
    );
    return summary.failed > 0 ? 1 : 0;
  } catch (error) {
    const failure = signal.aborted ? coerceError(signal.reason) : coerceError(error);
    logger.error({ code: failure.code, err: error }, `Warm cache failed: ${failure.message}`);
    return failure.exitCode === 2 ? 2 : 1;
  } finally {
    await storage.dispose?.().catch(() => {});
  }
}
