import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseBlueprint } from "../blueprint/parse.js";
import { NO_CONTROL } from "../blueprint/schema.js";
import { formatIssues } from "../blueprint/summary.js";
import type { Blueprint } from "../blueprint/types.js";
import type { Config } from "../config.js";
import { MAX_RENDER_CONCURRENCY, readGrantedCpus } from "../cpus.js";
import { coerceError, errorLogFields, JobError, type Stage } from "../errors.js";
import type { Logger } from "../log.js";
import { renderSteps } from "../media/render.js";
import { type VerifiedOutput, type VerifyReport, verifyOutput } from "../media/verify.js";
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
import { type CleanupStack, withCleanup } from "./cleanup.js";
import { type PreparedRender, prepareRender } from "./prepare.js";
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

/** The task row's store, opened for one execution. */
export interface OpenedTasks {
  tasks: TaskStore;
  /** True for the local embedded PostgreSQL (the row is created when missing). */
  embedded: boolean;
  close(): Promise<void>;
}

/** What a run needs from outside: built by main.ts, replaced by tests. */
export interface JobDependencies {
  /** Opens the task store (called once the task id is known; nothing is opened for a refused run). */
  openTasks(logger: Logger, signal: AbortSignal): Promise<OpenedTasks>;
  /** The storage the media comes from and the output goes to. */
  createStorage(logger: Logger): Storage;
}

/** The real adapters: PostgreSQL (or the embedded server) and local or GCS storage, per the configuration. */
export function jobDependencies(config: Config): JobDependencies {
  return {
    openTasks: async (logger, signal) => {
      const database = await openDatabase(config, logger);
      return {
        tasks: createTaskStore(database.pool, { logger, userId: config.userId, signal }),
        embedded: database.embedded,
        close: database.close,
      };
    },
    createStorage: (logger) => createStorage(config, logger),
  };
}

/** Which stage the run is in (recorded with a failure) and its logger; `enter` logs the stage done. */
interface StageTracker {
  readonly current: Stage;
  readonly logger: Logger;
  enter(next: Stage): void;
}

function stageTracker(taskLogger: Logger): StageTracker {
  const state = {
    stage: "validation" as Stage,
    logger: taskLogger.child({ stage: "validation" }),
    started: performance.now(),
  };
  return {
    get current() {
      return state.stage;
    },
    get logger() {
      return state.logger;
    },
    enter(next) {
      state.logger.info(
        { duration_ms: Math.round(performance.now() - state.started) },
        `Stage ${state.stage} done`,
      );
      state.stage = next;
      state.started = performance.now();
      state.logger = taskLogger.child({ stage: next });
    },
  };
}

/** One execution's fixed facts and the resources its stages share. */
interface Job {
  config: Config;
  signal: AbortSignal;
  reporter: ProgressReporter | undefined;
  taskId: string;
  blueprint: Blueprint | undefined;
  invalid: JobError | undefined;
  blueprintSha256: string;
  cpus: number;
  concurrency: number;
  tasks: TaskStore;
  embedded: boolean;
  stage: StageTracker;
  cleanup: CleanupStack;
  dependencies: JobDependencies;
}

/** Moves the run to its next stage: logged, shown on the terminal, and recorded on the row. */
async function enterStage(job: Job, next: Stage, message: string): Promise<void> {
  job.stage.enter(next);
  job.reporter?.stage(next);
  await job.tasks.progress(job.taskId, { progress: STAGE_PROGRESS[next], stage: next, message });
}

type Stop =
  | { status: "skipped"; exitCode: 0; reason: string }
  | { status: "failed"; exitCode: 2; error: JobError; recorded: false };

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw coerceError(signal.reason);
}

/** Validation: the row exists (embedded / CREATE_MISSING_TASK), is claimed, and still needs this run. */
async function claimTask(job: Job): Promise<{ blueprint: Blueprint } | Stop> {
  const { config, tasks, taskId } = job;
  const logger = job.stage.logger;
  if (job.embedded || config.createMissingTask) {
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
  if (attempt > 0 && isRecordedPermanentFailure(row, job.blueprintSha256)) {
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
  if (job.invalid !== undefined) throw job.invalid;
  const blueprint = job.blueprint;
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
  throwIfAborted(job.signal);
  return { blueprint };
}

/** Assembling: a temp directory and the storage, both released when the job ends. */
async function openWorkspace(job: Job): Promise<{ workDir: string; storage: Storage }> {
  await enterStage(job, "assembling", "Preparing workspace");
  const workDir = await mkdtemp(path.join(os.tmpdir(), "video-job-"));
  job.cleanup.defer(() => rm(workDir, { recursive: true, force: true }).catch(() => {}));
  const storage = job.dependencies.createStorage(job.stage.logger);
  job.cleanup.defer(() => storage.dispose?.().catch(() => {}));
  throwIfAborted(job.signal);
  return { workDir, storage };
}

/** Fetching: probe, plan and choose each piece's kind (clip cache or not: `prepare.ts`). */
async function planRun(
  job: Job,
  blueprint: Blueprint,
  workspace: { workDir: string; storage: Storage },
): Promise<PreparedRender> {
  const { taskId, tasks, reporter } = job;
  await enterStage(job, "fetching", "Fetching media");
  const logger = job.stage.logger;
  const prepared = await prepareRender(blueprint, workspace.storage, workspace.workDir, {
    config: job.config,
    logger,
    signal: job.signal,
    concurrency: job.concurrency,
    onProgress: (p) => {
      reporter?.update(p.fraction, p.detail);
      void tasks.progress(taskId, { progress: p.progress, stage: "fetching", message: p.message });
    },
  });
  for (const warning of prepared.plan.warnings) logger.warn({ warning }, warning);
  throwIfAborted(job.signal);
  return prepared;
}

/** Rendering: every FFmpeg run of the plan, then the output check. */
async function render(
  job: Job,
  prepared: PreparedRender,
): Promise<{ renderSeconds: number; output: VerifiedOutput }> {
  const { config, signal, taskId, tasks, reporter } = job;
  await enterStage(job, "rendering", "Rendering video");
  const logger = job.stage.logger;
  const { plan, steps } = prepared;
  const { renderSeconds } = await renderSteps(plan, steps, {
    workDir: prepared.renderDir,
    output: prepared.output,
    ffmpegPath: config.ffmpegPath,
    signal,
    logger,
    concurrency: job.concurrency,
    onProgress: (p) => {
      reporter?.update(p.percent / 100, progressDetail(p));
      void tasks.progress(taskId, {
        progress: progressWithin("rendering", p.percent / 100),
        stage: "rendering",
        message: `Rendering ${Math.floor(p.percent)}%`,
      });
    },
  });
  const check: VerifyReport = {
    decodedFrames: 0,
    decodeRanges: 0,
    packetsChecked: 0,
    copiedFramesMatched: 0,
  };
  const checkStarted = performance.now();
  const output = await verifyOutput(prepared.output, plan, {
    ffprobePath: config.ffprobePath,
    ffmpegPath: config.ffmpegPath,
    signal,
    threads: job.cpus,
    logger,
    // What the renderer encoded and copied: only the former and the joins are decoded.
    pieces: prepared.pieces,
    decode: config.verifyDecode,
    ...(prepared.songCache?.audioPacketHashes === undefined
      ? {}
      : { audioCopy: prepared.songCache.audioPacketHashes }),
    report: check,
  });
  const checkSeconds = (performance.now() - checkStarted) / 1000;
  // A freshly encoded song is stored for later jobs once the output is verified (best effort).
  await prepared.songCache?.publish();
  logger.info(
    {
      ...output,
      render_seconds: Math.round(renderSeconds * 100) / 100,
      check_seconds: Math.round(checkSeconds * 100) / 100,
      check_decoded_frames: check.decodedFrames,
      check_copied_frames: check.copiedFramesMatched,
      check_audio_decoded: check.audioDecoded ?? false,
      song_cached: prepared.songCache?.hit ?? false,
    },
    "Video assembled and verified",
  );
  throwIfAborted(signal);
  return { renderSeconds, output };
}

/** Uploading, cleanup and completed: publish the output, drop the workspace, record the result. */
async function publishResult(
  job: Job,
  blueprint: Blueprint,
  workspace: { workDir: string; storage: Storage },
  prepared: PreparedRender,
  rendered: { renderSeconds: number; output: VerifiedOutput },
): Promise<TaskResult> {
  const { taskId } = job;
  const { storage } = workspace;
  const outputKey = blueprint.output_config.output_path;
  await enterStage(job, "uploading", `Uploading ${outputKey}`);
  await storage.upload(
    prepared.output,
    outputKey,
    {
      contentType: contentTypeFor(outputKey),
      metadata: { task_id: taskId, blueprint_sha256: job.blueprintSha256 },
    },
    job.signal,
  );
  throwIfAborted(job.signal);

  await enterStage(job, "cleanup", "Cleaning up");
  await rm(workspace.workDir, { recursive: true, force: true });

  const { output, renderSeconds } = rendered;
  const plan = prepared.plan;
  const result: TaskResult = {
    video_url: storage.url(outputKey),
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
  await enterStage(job, "completed", "Completed");
  await job.tasks.complete(taskId, result);
  return result;
}

/** Records a failure on the row (when there is one to write) and maps it to the exit code. */
async function failed(
  job: Pick<Job, "taskId" | "blueprintSha256" | "signal"> & {
    tasks: TaskStore | undefined;
    stage: Stage;
    logger: Logger;
  },
  raw: unknown,
): Promise<JobOutcome> {
  const { logger, stage, tasks } = job;
  // An abort surfaces as whatever the interrupted call threw; the signal's reason says why.
  const error = job.signal.aborted ? coerceError(job.signal.reason) : coerceError(raw);
  // Every failure is an ERROR entry; an internal one carries its stack_trace for error reporting.
  logger.error(
    { err: raw, ...errorLogFields(error, raw), stage, issues: error.details },
    `Job failed: ${error.message}`,
  );
  let recorded = false;
  if (tasks !== undefined && !["TASK_NOT_FOUND", "TASK_FORBIDDEN"].includes(error.code)) {
    try {
      await tasks.fail(job.taskId, {
        stage,
        error: error.message,
        code: error.code,
        retryable: error.retryable,
        blueprint_sha256: job.blueprintSha256,
      });
      recorded = true;
    } catch (dbError) {
      logger.error({ err: dbError }, "Could not record the failure in the task row");
    }
  }
  return { status: "failed", exitCode: error.exitCode, error, recorded };
}

/**
 * Runs one execution: validate → load the task row → fetch → render → verify → upload → record,
 * as a sequence of stage functions. Every resource a stage acquires registers its release on a
 * last-in-first-out stack that runs on every path; every failure ends in exactly one `fail` write on
 * the row (when there is a row to write); the exit code follows SPEC §6.
 */
export async function runJob(input: JobInput, dependencies: JobDependencies): Promise<JobOutcome> {
  const { config, signal, reporter } = input;
  const jobStarted = performance.now();
  // Every FFmpeg piece is single-threaded; one runs per granted CPU, and the decode check uses them all.
  const cpus = input.cpus ?? (await readGrantedCpus()).cpus;
  const concurrency = Math.min(MAX_RENDER_CONCURRENCY, cpus);

  const { blueprint, error: invalid } = blueprintError(input.blueprintText, config);
  const blueprintSha256 = createHash("sha256")
    .update(input.blueprintText ?? "")
    .digest("hex");
  const taskId = blueprint?.task_id ?? rawTaskId(input.blueprintText, config.taskId);
  const taskLogger = taskId === undefined ? input.logger : input.logger.child({ task_id: taskId });

  if (blueprint !== undefined && config.taskId !== undefined && config.taskId !== blueprint.task_id) {
    // Protects the wrong row: nothing is touched (SPEC §2).
    const error = new JobError(
      `TASK_ID (${config.taskId}) does not match blueprint task_id (${blueprint.task_id}); nothing was changed`,
      { code: "INVALID_CONFIG" },
    );
    taskLogger.error({ code: error.code }, error.message);
    return { status: "failed", exitCode: 2, error, recorded: false };
  }
  if (taskId === undefined) {
    const error = invalid ?? new JobError("Blueprint has no task_id", { code: "INVALID_BLUEPRINT" });
    taskLogger.error(
      { code: error.code, issues: error.details },
      `${error.message} (no task row to record it: TASK_ID unset)`,
    );
    return { status: "failed", exitCode: error.exitCode, error, recorded: false };
  }

  const facts = { taskId, blueprintSha256, signal };
  return withCleanup(async (cleanup) => {
    try {
      const stage = stageTracker(taskLogger);
      const opened = await dependencies.openTasks(stage.logger, signal).then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      );
      if ("error" in opened) {
        return await failed(
          { ...facts, tasks: undefined, stage: stage.current, logger: stage.logger },
          opened.error,
        );
      }
      const { tasks } = opened.value;
      cleanup.defer(() =>
        opened.value
          .close()
          .catch((err: unknown) => stage.logger.warn({ err }, "Closing the database failed")),
      );
      cleanup.defer(() => tasks.release());
      cleanup.defer(() => tasks.flush().catch(() => {}));
      const job: Job = {
        config,
        signal,
        reporter,
        taskId,
        blueprint,
        invalid,
        blueprintSha256,
        cpus,
        concurrency,
        tasks,
        embedded: opened.value.embedded,
        stage,
        cleanup,
        dependencies,
      };
      try {
        const claimed = await claimTask(job);
        if ("status" in claimed) return claimed;
        const workspace = await openWorkspace(job);
        const prepared = await planRun(job, claimed.blueprint, workspace);
        const rendered = await render(job, prepared);
        const result = await publishResult(job, claimed.blueprint, workspace, prepared, rendered);
        stage.logger.info(
          { video_url: result.video_url, total_seconds: Math.round(performance.now() - jobStarted) / 1000 },
          "Job completed successfully",
        );
        return { status: "completed", exitCode: 0, result };
      } catch (raw) {
        return await failed({ ...facts, tasks, stage: stage.current, logger: stage.logger }, raw);
      }
    } finally {
      reporter?.done();
    }
  });
}

function progressDetail(p: { speed?: number; etaSeconds?: number }): string {
  const parts: string[] = [];
  if (p.speed !== undefined) parts.push(`${p.speed.toFixed(1)}x`);
  if (p.etaSeconds !== undefined && Number.isFinite(p.etaSeconds))
    parts.push(`ETA ${Math.ceil(p.etaSeconds)}s`);
  return parts.join(" ");
}
