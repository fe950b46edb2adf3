/**
 * Runs the built CLI (`dist/main.js`) as Cloud Run does: a fresh process configured by env vars only (plus
 * the few variables a process needs to run at all). Exposes each stdout line and the child's pid, so a test
 * can signal it or kill its FFmpeg, and can sample the process tree's RSS.
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CLI = path.join(ROOT, "dist", "main.js");

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  logs: Array<Record<string, unknown>>;
  elapsedMs: number;
  /** Milliseconds from our SIGTERM to the process's exit, when we sent one. */
  exitAfterSignalMs?: number;
  /** Peak RSS of the process tree (CLI + FFmpeg children), in bytes, when sampled. */
  peakRssBytes?: number;
}

export interface RunOptions {
  env: Record<string, string | undefined>;
  args?: string[];
  /** Called with each complete stdout line and the child's pid (send signals from here). */
  onLine?: (line: string, pid: number, terminate: () => void) => void;
  /** Sends SIGTERM once a stdout line matches, after `terminateDelayMs`. */
  terminateWhen?: RegExp;
  terminateDelayMs?: number;
  /** Samples the process tree's RSS every 50 ms. */
  sampleRss?: boolean;
  /** Hard limit: SIGKILL after this long (the test then fails on the exit code). */
  killAfterMs?: number;
  /** A command that execs node, e.g. `["taskset", "-c", "0"]` (it must exec, keeping the pid). */
  wrap?: string[];
  /** Runs the CLI as the leader of a new process group, like a shell's foreground job (`-pid` reaches all of it). */
  ownProcessGroup?: boolean;
}

/** Descendant pids of `pid` (children, grandchildren…), from /proc. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // Gone meanwhile.
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

export function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

function rssOf(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match === null ? 0 : Number(match[1]) * 1024;
  } catch {
    return 0;
  }
}

export function runCli(options: RunOptions): Promise<Run> {
  const started = performance.now();
  const env: Record<string, string> = {
    PATH: process.env["PATH"] ?? "",
    HOME: process.env["HOME"] ?? "/tmp",
    LOG_FORMAT: "json",
  };
  for (const [key, value] of Object.entries(options.env)) if (value !== undefined) env[key] = value;
  return new Promise((resolve, reject) => {
    const [command, ...prefix] = [...(options.wrap ?? []), process.execPath];
    const child = spawn(command ?? process.execPath, [...prefix, CLI, ...(options.args ?? [])], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: options.ownProcessGroup === true,
    });
    const pid = child.pid ?? -1;
    let stdout = "";
    let stderr = "";
    let pending = "";
    let signalledAt: number | undefined;
    let terminateArmed = false;
    let peak = 0;
    const sampler = options.sampleRss
      ? setInterval(() => {
          const total = [pid, ...descendants(pid)].reduce((sum, p) => sum + rssOf(p), 0);
          peak = Math.max(peak, total);
        }, 50)
      : undefined;
    const killer =
      options.killAfterMs !== undefined
        ? setTimeout(() => child.kill("SIGKILL"), options.killAfterMs)
        : undefined;
    const terminate = () => {
      if (signalledAt !== undefined) return;
      signalledAt = performance.now();
      child.kill("SIGTERM");
    };
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        options.onLine?.(line, pid, terminate);
        if (options.terminateWhen !== undefined && !terminateArmed && options.terminateWhen.test(line)) {
          terminateArmed = true;
          setTimeout(terminate, options.terminateDelayMs ?? 0);
        }
      }
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (sampler !== undefined) clearInterval(sampler);
      if (killer !== undefined) clearTimeout(killer);
      const ended = performance.now();
      const logs = stdout.split("\n").flatMap((line) => {
        if (!line.startsWith("{")) return [];
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
      const run: Run = {
        code,
        signal,
        stdout,
        stderr,
        logs,
        elapsedMs: ended - started,
        ...(signalledAt !== undefined && { exitAfterSignalMs: ended - signalledAt }),
        ...(options.sampleRss && { peakRssBytes: peak }),
      };
      resolve(run);
    });
  });
}
