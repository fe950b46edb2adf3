#!/usr/bin/env node
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseBlueprint } from "./blueprint/parse.js";
import { formatIssues, summarizeBlueprint } from "./blueprint/summary.js";
import { parseCli, USAGE } from "./cli.js";
import { type Config, loadConfig, readEnvironment } from "./config.js";
import { coerceError, JobError } from "./errors.js";
import { clipCacheApplies } from "./job/clip-cache.js";
import { prepareInputs } from "./job/inputs.js";
import { createProgressBar } from "./job/progress-bar.js";
import { runJob } from "./job/run.js";
import { createLogger, type Logger } from "./log.js";
import { planCommands } from "./media/plan.js";
import { createStorage } from "./storage/index.js";

/** After a signal, the job has this long to record the failure and clean up (SPEC §6: exit within 5 s). */
const SHUTDOWN_GRACE_MS = 4_500;

async function readBlueprintText(file: string | undefined, config: Config): Promise<string | undefined> {
  if (file === undefined) return config.blueprintJson;
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new JobError(
      `Cannot read blueprint file ${file}: ${(err as NodeJS.ErrnoException).code ?? "error"}`,
      {
        code: "INVALID_BLUEPRINT",
      },
    );
  }
}

/** `--check`: validate blueprint and configuration, print a summary or every problem. */
function check(text: string | undefined, config: Config): number {
  if (text === undefined) {
    process.stderr.write("No blueprint: set BLUEPRINT_JSON or pass --blueprint FILE\n");
    return 2;
  }
  const parsed = parseBlueprint(text, config.defaults);
  if (!parsed.ok) {
    process.stderr.write(
      `Invalid blueprint (${parsed.issues.length} problems):\n${formatIssues(parsed.issues)}\n`,
    );
    return 2;
  }
  process.stdout.write(`${summarizeBlueprint(parsed.blueprint)}\n`);
  return 0;
}

/** `--dry-run`: fetch and probe the inputs, print the plan and the FFmpeg commands; encode nothing. */
async function dryRun(
  text: string | undefined,
  config: Config,
  logger: Logger,
  signal: AbortSignal,
): Promise<number> {
  const status = check(text, config);
  if (status !== 0 || text === undefined) return status;
  const parsed = parseBlueprint(text, config.defaults);
  if (!parsed.ok) return 2;
  const workDir = await mkdtemp(path.join(os.tmpdir(), "video-job-dry-"));
  const storage = createStorage(config, logger);
  try {
    const inputs = await prepareInputs(parsed.blueprint, storage, workDir, { config, logger, signal });
    const { plan } = inputs;
    const commands = planCommands(plan, {
      inputs: inputs.clips,
      audio: inputs.audio,
      workDir: path.join(workDir, "render"),
      output: path.join(workDir, `output.${parsed.blueprint.output_config.output_format}`),
    });
    const lines = [
      "",
      `Render plan: ${plan.width}x${plan.height} @ ${plan.fps} fps, ${plan.totalFrames} frames (${plan.duration.toFixed(3)} s)`,
      ...plan.warnings.map((warning) => `warning: ${warning}`),
      ...(clipCacheApplies(config, parsed.blueprint)
        ? [
            `Clip cache on (${config.clipCachePrefix}): a run stream-copies move bodies from cached normalised clips` +
              " and re-encodes only transition windows, cut-ins and holds; the commands below are the uncached path.",
          ]
        : []),
      `FFmpeg commands (${commands.length}):`,
      ...commands.map((args) => `${config.ffmpegPath} ${args.map(shellQuote).join(" ")}`),
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
    return 0;
  } finally {
    await rm(workDir, { recursive: true, force: true });
    await storage.dispose?.();
  }
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

async function main(argv: readonly string[]): Promise<number> {
  let options: ReturnType<typeof parseCli>;
  try {
    options = parseCli(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }

  let config: Config;
  try {
    config = loadConfig(readEnvironment());
  } catch (err) {
    process.stderr.write(`${coerceError(err).message}\n`);
    return 2;
  }
  let text: string | undefined;
  try {
    text = await readBlueprintText(options.blueprintFile, config);
  } catch (err) {
    process.stderr.write(`${coerceError(err).message}\n`);
    return 2;
  }
  if (options.check) return check(text, config);

  const logger = createLogger({ level: config.logLevel, format: config.logFormat }).child({
    user_id: config.userId,
    execution: config.cloudRun.execution,
    attempt: config.cloudRun.taskAttempt,
  });
  const controller = new AbortController();
  for (const signalName of ["SIGTERM", "SIGINT"] as const) {
    process.once(signalName, () => {
      logger.warn({ signal: signalName }, `Received ${signalName}: stopping`);
      controller.abort(
        new JobError(`Job terminated: ${signalName}`, { code: "TERMINATED", retryable: true }),
      );
      setTimeout(() => process.exit(1), SHUTDOWN_GRACE_MS).unref();
    });
  }
  logger.info(
    {
      storage: config.gcsBucket === undefined ? "local" : "gcs",
      bucket: config.gcsBucket,
      gcp_project: config.gcpProjectId,
      gcp_region: config.gcpRegion,
      cloud_run_job: config.cloudRun.job,
      cloud_run_task_index: config.cloudRun.taskIndex,
    },
    "Job started",
  );

  if (options.dryRun) {
    try {
      return await dryRun(text, config, logger, controller.signal);
    } catch (err) {
      const error = coerceError(err);
      logger.error({ code: error.code }, error.message);
      return error.exitCode;
    }
  }

  const reporter = process.stderr.isTTY && config.logFormat === "pretty" ? createProgressBar() : undefined;
  const outcome = await runJob({ config, logger, blueprintText: text, signal: controller.signal, reporter });
  return outcome.exitCode;
}

const exitCode = await main(process.argv.slice(2));
// Don't wait on stray handles (sockets in keep-alive, pino transports flush on exit).
process.exit(exitCode);
