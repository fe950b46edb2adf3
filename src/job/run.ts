import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseBlueprint } from "../blueprint/parse.js";
import { NO_CONTROL } from "../blueprint/schema.js";
import { formatIssues } from "../blueprint/summary.js";
import type { Blueprint } from "../blueprint/types.js";
import type { Config } from "../config.js";
import { readGrantedCpus } from "../cpus.js";
import { coerceError, errorLogFields, JobError, type Stage } from "../errors.js";
import type { Logger } from "../log.js";
import { renderSteps } from "../media/render.js";
import { verifyOutput } from "../media/verify.js";
import { createStorage } from "../storage/index.js";
import { contentTypeFor } from "../storage/keys.js";
import type { Storage } from "../storage/storage.js";
import { openDatabase } from "../tasks/db.js";
import {
  createTaskStore,
  isAlreadyCompleted,
  isRecordedPermanentFailure,
  type TaskResult,
  type TaskStore,
} from "../tasks/store.js";
import { prepareRender } from "./prepare.js";
import type { ProgressReporter } from "./progress-bar.js";
import { reservedOutputProblem } from "./reserved.js";
import { progressWithin, STAGE_PROGRESS } from "./stages.js";

export interface JobInput {
  config: Config;
  logger: Logger;
  /** The blueprint text (from `--blueprint FILE` or BLUEPRINT_JSON); undefined when neither was given. */
  blueprintText: string | undefined;
  /** Aborted on SIGTERM/SIGINT; its reason is the JobError to record. */
  signal: AbortSignal;
  /** Live progress on a terminal (optional). */
  reporter?: ProgressReporter;
  /** CPUs granted to the job (cgroup quota, affinity); read from the system when absent. */
  cpus?: number;
}

/** FFmpeg runs at once never exceed this, whatever the CPUs: each holds its own frames in memory. */
export const MAX_RENDER_CONCURRENCY = 8;

export type JobOutcome =
  | { status: "completed"; exitCode: 0; result: TaskResult }
  | { status: "skipped"; exitCode: 0; reason: string }
  | { status: "failed"; exitCode: 1 | 2; error: JobError; recorded: boolean };

/** Task id to record a failure against: the blueprint's when it has one, else TASK_ID. */
function rawTaskId(text: string | undefined, fallback: string | undefined): string | undefined {
  if (text === undefined) return fallback;
  try {
    const raw: unknown = JSON.parse(text);
    if (raw !== null && typeof raw === "object" && !Array.isArray(raw)) {
      const id = (raw as Record<string, unknown>)["task_id"];
      // Only an id the row could have (varchar(36), no control characters).
      if (typeof id === "string" && id.trim() !== "" && id.length <= 36 && NO_CONTROL.test(id)) return id;
    }
  } catch {
    // Not JSON: the row named by TASK_ID is the one to mark failed (SPEC §5).
  }
  return fallback;
}

function blueprintError(
  text: string | undefined,
  config: Config,
): { blueprint?: Blueprint; error?: JobError } {
  if (text === undefined) {
    return {
      error: new JobError("No blueprint: set BLUEPRINT_JSON or pass --blueprint FILE", {
        code: "INVALID_BLUEPRINT",
      }),
    };
  }
  const parsed = parseBlueprint(text, config.defaults);
  if (parsed.ok) {
    const reserved = reservedOutputProblem(parsed.blueprint.output_config.output_path, config);
    if (reserved === undefined) return { blueprint: parsed.blueprint };
    return {
      error: new JobError(`Invalid blueprint (1 problem): output_config.output_path: ${reserved}`, {
        code: "INVALID_BLUEPRINT",
      }),
    };
  }
  const count = parsed.issues.length;
  return {
    error: new JobError(
      `Invalid blueprint (${count} problem${count === 1 ? "" : "s"}): ${formatIssues(parsed.issues, "; ")}`,
      {
        code: "INVALID_BLUEPRINT",
        details: parsed.issues,
      },
    ),
  };
}

/**
 * Runs one execution: validate → load the task row → fetch → render → verify → upload → record.
 * Every failure ends in exactly one `fail` write on the row (when there is a row to write), the
 * temp directory is removed on every path, and the returned exit code follows SPEC §6.
 */
export async function runJob(input: JobInput): Promise<JobOutcome> {
  const { config, signal, reporter } = input;
  const jobStarted = performance.now();
  let logger = input.logger;
  // Every FFmpeg piece is single-threaded; one runs per granted CPU, and the decode check uses them all.
  const cpus = input.cpus ?? (await readGrantedCpus()).cpus;
  const concurrency = Math.min(MAX_RENDER_CONCURRENCY, cpus);

  const { blueprint, error: invalid } = blueprintError(input.blueprintText, config);
  const blueprintSha256 = createHash("sha256")
    .update(input.blueprintText ?? "")
    .digest("hex");
  const taskId = blueprint?.task_id ?? rawTaskId(input.blueprintText, config.taskId);
  if (taskId !== undefined) logger = logger.child({ task_id: taskId });
  const taskLogger = logger;

  if (blueprint !== undefined && config.taskId !== undefined && config.taskId !== blueprint.task_id) {
    // Protects the wrong row: nothing is touched (SPEC §2).
    const error = new JobError(
      `TASK_ID (${config.taskId}) does not match blueprint task_id (${blueprint.task_id}); nothing was changed`,
      { code: "INVALID_CONFIG" },
    );
    logger.error({ code: error.code }, error.message);
    return { status: "failed", exitCode: 2, error, recorded: false };
  }
  if (taskId === undefined) {
    const error = invalid ?? new JobError("Blueprint has no task_id", { code: "INVALID_BLUEPRINT" });
    logger.error(
      { code: error.code, issues: error.details },
      `${error.message} (no task row to record it: TASK_ID unset)`,
    );
    return { status: "failed", exitCode: error.exitCode, error, recorded: false };
  }

  let stage: Stage = "validation";
  logger = taskLogger.child({ stage });
  let tasks: TaskStore | undefined;
  let closeDatabase: (() => Promise<void>) | undefined;
  let storage: Storage | undefined;
  let workDir: string | undefined;
  let stageStarted = performance.now();

  const enterStage = async (next: Stage, message: string) => {
    logger.info({ duration_ms: Math.round(performance.now() - stageStarted) }, `Stage ${stage} done`);
    stage = next;
    stageStarted = performance.now();
    logger = taskLogger.child({ stage: next });
    reporter?.stage(next);
    await tasks?.progress(taskId, { progress: STAGE_PROGRESS[next], stage: next, message });
  };
  const throwIfAborted = () => {
    if (signal.aborted) throw coerceError(signal.reason);
  };

  try {
    const database = await openDatabase(config, logger);
    closeDatabase = database.close;
    tasks = createTaskStore(database.pool, { logger, userId: config.userId, signal });
    if (database.embedded || config.createMissingTask) {
      const created = await tasks.ensure(taskId, config.userId ?? 1);
      if (created && config.createMissingTask) {
        logger.info(
          { user_id: config.userId ?? 1 },
          `Task ${taskId} not found: created it (CREATE_MISSING_TASK=on)`,
        );
      }
    }

    // One execution per task at a time (docs/decisions/task-store.md): claimed before the row is
    // read, so a duplicate never acts on a row another execution is about to change.
    if (!(await tasks.claim(taskId))) {
      const reason = `Task ${taskId} is being processed by another execution; leaving the row to it`;
      logger.warn(reason);
      return { status: "skipped", exitCode: 0, reason };
    }
    const row = await tasks.load(taskId);
    const attempt = Number(config.cloudRun.taskAttempt ?? "0");
    if (attempt > 0 && isRecordedPermanentFailure(row, blueprintSha256)) {
      // Cloud Run retries every failed task; input that was invalid is still invalid (SPEC §6).
      const code = String(row.result?.["code"]);
      const error = new JobError(
        `Task ${taskId} already failed permanently with this blueprint (${code}): ${row.error ?? ""}`.trim(),
        { code: code === "INVALID_CONFIG" ? "INVALID_CONFIG" : "INVALID_BLUEPRINT" },
      );
      logger.warn(
        { attempt, code },
        `Retry attempt ${attempt} of a recorded permanent failure: stopping, the task row is unchanged`,
      );
      return { status: "failed", exitCode: 2, error, recorded: false };
    }
    if (invalid !== undefined) throw invalid;
    if (blueprint === undefined) throw new JobError("Blueprint missing", { code: "INTERNAL" });
    const outputKey = blueprint.output_config.output_path;
    if (isAlreadyCompleted(row, outputKey)) {
      const reason = `Task ${taskId} is already completed with ${outputKey}; nothing to do`;
      logger.info({ status: row.status }, reason);
      return { status: "skipped", exitCode: 0, reason };
    }

    await tasks.start(taskId, "Validating blueprint");
    logger.info(
      {
        num_moves: blueprint.moves.length,
        total_duration: blueprint.total_duration,
        audio_tempo: blueprint.audio_tempo,
        difficulty_level: blueprint.difficulty_level,
        output_path: outputKey,
      },
      "Blueprint parsed successfully",
    );
    throwIfAborted();

    await enterStage("assembling", "Preparing workspace");
    workDir = await mkdtemp(path.join(os.tmpdir(), "video-job-"));
    const store = createStorage(config, logger);
    storage = store;
    throwIfAborted();

    await enterStage("fetching", "Fetching media");
    const prepared = await prepareRender(blueprint, store, workDir, {
      config,
      logger,
      signal,
      concurrency,
      onProgress: (p) => {
        reporter?.update(p.fraction, p.detail);
        void tasks?.progress(taskId, { progress: p.progress, stage: "fetching", message: p.message });
      },
    });
    const { plan, steps, output: outputFile, renderDir } = prepared;
    for (const warning of plan.warnings) logger.warn({ warning }, warning);
    throwIfAborted();

    await enterStage("rendering", "Rendering video");
    const { renderSeconds } = await renderSteps(plan, steps, {
      workDir: renderDir,
      output: outputFile,
      ffmpegPath: config.ffmpegPath,
      signal,
      logger,
      concurrency,
      onProgress: (p) => {
        reporter?.update(p.percent / 100, progressDetail(p));
        void tasks?.progress(taskId, {
          progress: progressWithin("rendering", p.percent / 100),
          stage: "rendering",
          message: `Rendering ${Math.floor(p.percent)}%`,
        });
      },
    });
    const output = await verifyOutput(outputFile, plan, {
      ffprobePath: config.ffprobePath,
      ffmpegPath: config.ffmpegPath,
      signal,
      threads: cpus,
      logger,
    });
    logger.info(
      { ...output, render_seconds: Math.round(renderSeconds * 100) / 100 },
      "Video assembled and verified",
    );
    throwIfAborted();

    await enterStage("uploading", `Uploading ${outputKey}`);
    await store.upload(
      outputFile,
      outputKey,
      {
        contentType: contentTypeFor(outputKey),
        metadata: { task_id: taskId, blueprint_sha256: blueprintSha256 },
      },
      signal,
    );
    throwIfAborted();

    await enterStage("cleanup", "Cleaning up");
    await rm(workDir, { recursive: true, force: true });
    workDir = undefined;

    const result: TaskResult = {
      video_url: store.url(outputKey),
      output_path: outputKey,
      moves_count: blueprint.moves.length,
      num_moves: blueprint.moves.length,
      file_size: output.file_size,
      duration: output.duration,
      total_duration: Math.round(plan.duration * 1000) / 1000,
      width: output.width,
      height: output.height,
      fps: output.fps,
      video_codec: output.video_codec,
      audio_codec: output.audio_codec,
      render_seconds: Math.round(renderSeconds * 100) / 100,
      warnings: plan.warnings,
    };
    await enterStage("completed", "Completed");
    await tasks.complete(taskId, result);
    logger.info(
      { video_url: result.video_url, total_seconds: Math.round(performance.now() - jobStarted) / 1000 },
      "Job completed successfully",
    );
    return { status: "completed", exitCode: 0, result };
  } catch (raw) {
    // An abort surfaces as whatever the interrupted call threw; the signal's reason says why.
    const error = signal.aborted ? coerceError(signal.reason) : coerceError(raw);
    // Every failure is an ERROR entry; an internal one carries its stack_trace for error reporting.
    logger.error(
      { err: raw, ...errorLogFields(error, raw), stage, issues: error.details },
      `Job failed: ${error.message}`,
    );
    let recorded = false;
    if (tasks !== undefined && !["TASK_NOT_FOUND", "TASK_FORBIDDEN"].includes(error.code)) {
      try {
        await tasks.fail(taskId, {
          stage,
          error: error.message,
          code: error.code,
          retryable: error.retryable,
          blueprint_sha256: blueprintSha256,
        });
        recorded = true;
      } catch (dbError) {
        logger.error({ err: dbError }, "Could not record the failure in the task row");
      }
    }
    return { status: "failed", exitCode: error.exitCode, error, recorded };
  } finally {
    reporter?.done();
    if (workDir !== undefined) await rm(workDir, { recursive: true, force: true }).catch(() => {});
    await tasks?.flush().catch(() => {});
    await tasks?.release();
    await storage?.dispose?.().catch(() => {});
    await closeDatabase?.().catch((err: unknown) => logger.warn({ err }, "Closing the database failed"));
  }
}

function progressDetail(p: { speed?: number; etaSeconds?: number }): string {
  const parts: string[] = [];
  if (p.speed !== undefined) parts.push(`${p.speed.toFixed(1)}x`);
  if (p.etaSeconds !== undefined && Number.isFinite(p.etaSeconds))
    parts.push(`ETA ${Math.ceil(p.etaSeconds)}s`);
  return parts.join(" ");
}
