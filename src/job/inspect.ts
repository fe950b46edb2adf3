/**
 * `--check` and `--dry-run`: what a run would do, as text for a person or as one JSON object for the
 * API (`--json`). Nothing here writes to storage or the task row.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseBlueprint } from "../blueprint/parse.js";
import { type BlueprintSummary, formatIssues, summarizeBlueprint, summaryOf } from "../blueprint/summary.js";
import type { Blueprint } from "../blueprint/types.js";
import { type Config, type ConfigIssue, parseConfig } from "../config.js";
import { MAX_RENDER_CONCURRENCY, readGrantedCpus } from "../cpus.js";
import { coerceError, errorLogFields } from "../errors.js";
import { createLogger, type Logger } from "../log.js";
import { createStorage } from "../storage/index.js";
import { preparedCommands, prepareRender } from "./prepare.js";
import { reservedOutputProblem } from "./reserved.js";

export interface Problem {
  /** Where the problem is: the blueprint (path is its JSON path) or the environment (path is the variable). */
  source: "blueprint" | "environment";
  path: string;
  message: string;
  expected: string | null;
  found: string | null;
}

export interface CheckReport {
  valid: boolean;
  problems: Problem[];
  /** What would be rendered; null when the blueprint is invalid. */
  summary: BlueprintSummary | null;
}

export interface DryRunReport extends CheckReport {
  /** The render plan after fetching and probing the inputs; null when it could not be made. */
  plan: {
    width: number;
    height: number;
    fps: number;
    total_frames: number;
    duration: number;
    warnings: string[];
    clip_cache: boolean;
    /** FFmpeg runs at once: the CPUs granted to the job. */
    concurrency: number;
  } | null;
  /**
   * Each FFmpeg run a real run would execute given the cache state read now (entries to build, then
   * the pieces and the song, then the join): the binary, then its arguments.
   */
  commands: string[][];
  /** Why the plan could not be made (a missing clip, unreadable media…); null otherwise. */
  error: { code: string; message: string; retryable: boolean } | null;
}

export interface Checked {
  report: CheckReport;
  /** Present when the report is valid. */
  blueprint?: Blueprint;
  config?: Config;
}

const NO_BLUEPRINT = "No blueprint: set BLUEPRINT_JSON or pass --blueprint FILE";

function environmentProblem(issue: ConfigIssue): Problem {
  return { source: "environment", path: issue.variable, message: issue.message, expected: null, found: null };
}

/**
 * Validates the configuration and the blueprint together, every problem at once. `text` undefined: no
 * blueprint given; `readError`: the blueprint file could not be read.
 */
export function checkInputs(
  text: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
  readError?: string,
): Checked {
  const parsedConfig = parseConfig(env);
  const problems: Problem[] = parsedConfig.ok ? [] : parsedConfig.issues.map(environmentProblem);
  // With a broken configuration, the blueprint is still checked against the built-in defaults.
  const fallback = parseConfig({});
  const defaults = parsedConfig.ok
    ? parsedConfig.config.defaults
    : fallback.ok
      ? fallback.config.defaults
      : undefined;
  let blueprint: Blueprint | undefined;
  if (readError !== undefined || text === undefined) {
    const message = readError ?? NO_BLUEPRINT;
    problems.push({ source: "blueprint", path: "", message, expected: null, found: null });
  } else if (defaults !== undefined) {
    const parsed = parseBlueprint(text, defaults);
    if (parsed.ok) blueprint = parsed.blueprint;
    else {
      for (const issue of parsed.issues) {
        problems.push({
          source: "blueprint",
          path: issue.path,
          message: issue.message,
          expected: issue.expected ?? null,
          found: issue.found ?? null,
        });
      }
    }
  }
  const config = parsedConfig.ok ? parsedConfig.config : undefined;
  const reserved =
    blueprint !== undefined && config !== undefined
      ? reservedOutputProblem(blueprint.output_config.output_path, config)
      : undefined;
  if (reserved !== undefined) {
    problems.push({
      source: "blueprint",
      path: "output_config.output_path",
      message: reserved,
      expected: null,
      found: blueprint?.output_config.output_path ?? null,
    });
  }
  if (blueprint !== undefined && config?.taskId !== undefined && config.taskId !== blueprint.task_id) {
    problems.push({
      source: "environment",
      path: "TASK_ID",
      message: `TASK_ID (${config.taskId}) does not match blueprint task_id (${blueprint.task_id})`,
      expected: blueprint.task_id,
      found: config.taskId,
    });
  }
  const valid = problems.length === 0;
  return {
    report: { valid, problems, summary: blueprint !== undefined ? summaryOf(blueprint) : null },
    ...(valid && blueprint !== undefined && config !== undefined ? { blueprint, config } : {}),
  };
}

/** `--check` as text: the summary (stdout), or the problems (stderr). */
export function formatCheck(checked: Checked): { stdout: string; stderr: string } {
  if (checked.blueprint !== undefined)
    return { stdout: `${summarizeBlueprint(checked.blueprint)}\n`, stderr: "" };
  const environment = checked.report.problems.filter((p) => p.source === "environment");
  const blueprint = checked.report.problems.filter((p) => p.source === "blueprint");
  const lines: string[] = [];
  if (environment.length > 0) {
    lines.push(`Invalid configuration: ${environment.map((p) => `${p.path}: ${p.message}`).join("; ")}`);
  }
  if (blueprint.length > 0) {
    lines.push(
      blueprint.length === 1 && blueprint[0]?.path === ""
        ? blueprint[0].message
        : `Invalid blueprint (${blueprint.length} problems):\n${formatIssues(blueprint.map(({ path, message }) => ({ path, message })))}`,
    );
  }
  return { stdout: "", stderr: `${lines.join("\n")}\n` };
}

/** `--dry-run`: fetch and probe the inputs, plan the render; encode nothing, write nothing to storage. */
export async function dryRun(
  checked: Checked,
  options: { logger: Logger; signal: AbortSignal; concurrency: number },
): Promise<{ report: DryRunReport; exitCode: 0 | 1 | 2 }> {
  const empty = { ...checked.report, plan: null, commands: [], error: null };
  const { blueprint, config } = checked;
  if (blueprint === undefined || config === undefined) return { report: empty, exitCode: 2 };
  const workDir = await mkdtemp(path.join(os.tmpdir(), "video-job-dry-"));
  const storage = createStorage(config, options.logger);
  try {
    // The planner a run uses, reading the clip cache without building or publishing anything.
    const prepared = await prepareRender(blueprint, storage, workDir, {
      config,
      logger: options.logger,
      signal: options.signal,
      concurrency: options.concurrency,
      readOnly: true,
    });
    const { plan } = prepared;
    const commands = preparedCommands(prepared);
    return {
      report: {
        ...empty,
        plan: {
          width: plan.width,
          height: plan.height,
          fps: plan.fps,
          total_frames: plan.totalFrames,
          duration: plan.duration,
          warnings: plan.warnings,
          clip_cache: prepared.clipCache,
          concurrency: options.concurrency,
        },
        commands: commands.map((args) => [config.ffmpegPath, ...args]),
      },
      exitCode: 0,
    };
  } catch (err) {
    const error = coerceError(options.signal.aborted ? options.signal.reason : err);
    options.logger.error(errorLogFields(error, err), error.message);
    return {
      report: { ...empty, error: { code: error.code, message: error.message, retryable: error.retryable } },
      exitCode: error.exitCode,
    };
  } finally {
    await rm(workDir, { recursive: true, force: true });
    await storage.dispose?.();
  }
}

function write(stream: NodeJS.WriteStream, text: string): void {
  if (text !== "") stream.write(text);
}

/**
 * `--check` and `--dry-run` as the CLI runs them: the configuration and the blueprint are parsed
 * once (`checkInputs`), then either reported or planned. stdout holds only the requested output;
 * logs (dry run) go to stderr. Returns the exit code.
 */
export async function inspect(
  options: { dryRun: boolean; json: boolean },
  env: Readonly<Record<string, string | undefined>>,
  text: string | undefined,
  readError: string | undefined,
  onSignals: (controller: AbortController, logger: Logger) => void,
): Promise<number> {
  const checked = checkInputs(text, env, readError);
  if (!options.dryRun || !checked.report.valid) {
    if (options.json) write(process.stdout, `${JSON.stringify(checked.report)}\n`);
    else {
      const { stdout, stderr } = formatCheck(checked);
      write(process.stdout, stdout);
      write(process.stderr, stderr);
    }
    return checked.report.valid ? 0 : 2;
  }
  const config = checked.config as Config;
  const logger = createLogger({ level: config.logLevel, format: config.logFormat, stderr: true });
  const controller = new AbortController();
  onSignals(controller, logger);
  const cpus = await readGrantedCpus();
  const { report, exitCode } = await dryRun(checked, {
    logger,
    signal: controller.signal,
    concurrency: Math.min(MAX_RENDER_CONCURRENCY, cpus.cpus),
  });
  write(process.stdout, options.json ? `${JSON.stringify(report)}\n` : formatDryRun(report, checked));
  return exitCode;
}

/** `--dry-run` as text: the `--check` summary, the plan and one shell-quoted command per line. */
export function formatDryRun(report: DryRunReport, checked: Checked): string {
  if (report.plan === null || checked.blueprint === undefined) return "";
  const { plan } = report;
  const lines = [
    summarizeBlueprint(checked.blueprint),
    "",
    `Render plan: ${plan.width}x${plan.height} @ ${plan.fps} fps, ${plan.total_frames} frames (${plan.duration.toFixed(3)} s)`,
    ...plan.warnings.map((warning) => `warning: ${warning}`),
    ...(plan.clip_cache
      ? [
          `Clip cache on (${checked.config?.clipCachePrefix}): move bodies are stream-copied from cached normalised` +
            " clips and only transition windows, cut-ins and holds are re-encoded; the commands below are what a run executes given the cache as it is now.",
        ]
      : []),
    `FFmpeg runs at once: ${plan.concurrency}`,
    `FFmpeg commands (${report.commands.length}):`,
    ...report.commands.map((command) => command.map(shellQuote).join(" ")),
  ];
  return `${lines.join("\n")}\n`;
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}
