import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CLI = path.join(ROOT, "dist", "main.js");

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Parsed JSON log lines from stdout. */
  logs: Array<Record<string, unknown>>;
  elapsedMs: number;
}

export interface CliOptions {
  env: Record<string, string | undefined>;
  args?: string[];
  /** Sends SIGTERM once a stdout line matches (e.g. the rendering stage started). */
  terminateWhen?: RegExp;
  /** Delay after the match before the signal. */
  terminateDelayMs?: number;
  onTerminate?: () => void;
}

/**
 * Runs the built CLI as Cloud Run does: a fresh process configured by env vars only (plus the few
 * variables a process needs to run at all).
 */
export function runCli(options: CliOptions): Promise<CliRun & { exitAfterSignalMs?: number }> {
  const started = performance.now();
  const env: Record<string, string> = {
    PATH: process.env["PATH"] ?? "",
    HOME: process.env["HOME"] ?? "/tmp",
    LOG_FORMAT: "json",
  };
  for (const [key, value] of Object.entries(options.env)) if (value !== undefined) env[key] = value;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...(options.args ?? [])], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let terminatedAt: number | undefined;
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      if (
        options.terminateWhen !== undefined &&
        terminatedAt === undefined &&
        options.terminateWhen.test(stdout)
      ) {
        terminatedAt = -1;
        setTimeout(() => {
          terminatedAt = performance.now();
          options.onTerminate?.();
          child.kill("SIGTERM");
        }, options.terminateDelayMs ?? 0);
      }
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      const logs = stdout
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .flatMap((line) => {
          try {
            return [JSON.parse(line) as Record<string, unknown>];
          } catch {
            return [];
          }
        });
      const ended = performance.now();
      resolve({
        code,
        signal,
        stdout,
        stderr,
        logs,
        elapsedMs: ended - started,
        exitAfterSignalMs: terminatedAt !== undefined && terminatedAt > 0 ? ended - terminatedAt : undefined,
      });
    });
  });
}
