#!/usr/bin/env node
import { readFile } from "node:fs/promises";
import { parseCli, USAGE } from "./cli.js";
import { type Config, loadConfig, readEnvironment } from "./config.js";
import { readGrantedCpus } from "./cpus.js";
import { coerceError, JobError } from "./errors.js";
import { inspect } from "./job/inspect.js";
import { createProgressBar, type ProgressBar } from "./job/progress-bar.js";
import { jobDependencies, runJob } from "./job/run.js";
import { warmCacheMain } from "./job/warm-cache-cli.js";
import { createLogger, type Logger } from "./log.js";

/** After a signal, the job has this long to record the failure and clean up (SPEC §6: exit within 5 s). */
const SHUTDOWN_GRACE_MS = 4_500;

/** The package's version (package.json sits next to src/ and dist/ alike). */
async function version(): Promise<string> {
  const text = await readFile(new URL("../package.json", import.meta.url), "utf8");
  return (JSON.parse(text) as { version: string }).version;
}

/** The blueprint text, or why it could not be read. */
async function readBlueprint(
  file: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): Promise<{ text?: string; readError?: string }> {
  if (file === undefined) {
    // As config.ts reads it: trimmed, empty counts as unset.
    const text = env["BLUEPRINT_JSON"]?.trim();
    return text === undefined || text === "" ? {} : { text };
  }
  try {
    return { text: await readFile(file, "utf8") };
  } catch (err) {
    return {
      readError: `Cannot read blueprint file ${file}: ${(err as NodeJS.ErrnoException).code ?? "error"}`,
    };
  }
}

/** Aborts `controller` on SIGTERM/SIGINT with the error to record; exits after a grace period. */
function onSignals(controller: AbortController, logger: Logger): void {
  for (const signalName of ["SIGTERM", "SIGINT"] as const) {
    // `on`, not `once`: a second signal (Cloud Run, or Ctrl-C twice) must not fall through to the default
    // action, which kills the process before the cleanup and the row (exit 143).
    process.on(signalName, () => {
      if (controller.signal.aborted) {
        logger.warn({ signal: signalName }, `Received ${signalName} again: already stopping`);
        return;
      }
      logger.warn({ signal: signalName }, `Received ${signalName}: stopping`);
      controller.abort(
        new JobError(`Job terminated: ${signalName}`, { code: "TERMINATED", retryable: true }),
      );
      setTimeout(() => process.exit(1), SHUTDOWN_GRACE_MS).unref();
    });
  }
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === "warm-cache") {
    // Pre-warming the clip cache: its own arguments and exit codes (src/job/warm-cache-cli.ts).
    const controller = new AbortController();
    return warmCacheMain(argv.slice(1), readEnvironment(), controller.signal, (logger) =>
      onSignals(controller, logger),
    );
  }
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
  if (options.version) {
    process.stdout.write(`${await version()}\n`);
    return 0;
  }

  const env = readEnvironment();
  const { text, readError } = await readBlueprint(options.blueprintFile, env);

  if (options.check || options.dryRun) {
    // stdout holds only the requested output; logs (dry run) go to stderr.
    return inspect({ dryRun: options.dryRun, json: options.json }, env, text, readError, onSignals);
  }

  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    process.stderr.write(`${coerceError(err).message}\n`);
    return 2;
  }
  if (readError !== undefined) {
    process.stderr.write(`${readError}\n`);
    return 2;
  }

  // On a terminal the progress bar and the pretty log lines share stderr: logs clear and redraw the bar.
  const bar: ProgressBar | undefined =
    process.stderr.isTTY && config.logFormat === "pretty" ? createProgressBar() : undefined;
  const logger = createLogger({
    level: config.logLevel,
    format: config.logFormat,
    ...(bar === undefined ? {} : { prettyStream: bar.logStream }),
  }).child({
    user_id: config.userId,
    execution: config.cloudRun.execution,
    attempt: config.cloudRun.taskAttempt,
  });
  const controller = new AbortController();
  onSignals(controller, logger);
  const cpus = await readGrantedCpus();
  logger.info(
    {
      version: await version(),
      node: process.version,
      storage: config.gcsBucket === undefined ? "local" : "gcs",
      bucket: config.gcsBucket,
      gcp_project: config.gcpProjectId,
      gcp_region: config.gcpRegion,
      cloud_run_job: config.cloudRun.job,
      cloud_run_task_index: config.cloudRun.taskIndex,
      cpus: cpus.cpus,
      cpu_quota: cpus.quota,
      cpu_limit: cpus.source,
    },
    "Job started",
  );
  // The job's adapters (task store, storage) are built here; the job composes its stages over them.
  const outcome = await runJob(
    { config, logger, blueprintText: text, signal: controller.signal, reporter: bar, cpus: cpus.cpus },
    jobDependencies(config),
  );
  return outcome.exitCode;
}

// Safety net: a promise that can never settle (e.g. a library waiting for an event that already passed)
// would end the process with Node's exit code 13. Exit codes are 0, 1 and 2 only (SPEC §6).
let settled = false;
process.on("beforeExit", () => {
  if (settled) return;
  process.stderr.write(
    "The job stopped making progress before it finished (an operation never completed); exiting 1\n",
  );
  process.exit(1);
});
const exitCode = await main(process.argv.slice(2));
settled = true;
// Don't wait on stray handles (sockets in keep-alive, pino transports flush on exit).
process.exit(exitCode);
