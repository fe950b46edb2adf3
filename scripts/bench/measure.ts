/**
 * Runs one command as a process tree and measures it: wall time, CPU seconds of the whole tree
 * (bash's `times` after the command: user+sys of every waited-for descendant), peak RSS summed over
 * the tree (sampled from /proc), and peak bytes in a temp directory (sampled).
 */
import { spawn } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

export interface Measurement {
  name: string;
  exitCode: number;
  wallSeconds: number;
  cpuSeconds: number;
  /** Peak of the summed RSS of the tree, embedded PostgreSQL server processes excluded. */
  peakRssMiB: number;
  /** Peak RSS of PostgreSQL server processes (embedded database, absent on Cloud Run). */
  peakPostgresMiB: number;
  peakTempMiB: number;
  /** Peak of tree RSS + temp bytes at the same instant: what Cloud Run's memory limit sees. */
  peakRssPlusTempMiB: number;
  stderrTail: string;
}

export interface MeasureOptions {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Directory whose size is sampled (the job's TMPDIR). */
  tempDir?: string;
  /** Pin the tree to these many cores (taskset). */
  cpus?: number;
  /** Keep the command's stdout (e.g. JSON logs) in this file; discarded otherwise. */
  stdoutFile?: string;
  sampleMs?: number;
}

const PAGE = 4096;
const MiB = 1024 * 1024;

function readProcs(): Map<number, { ppid: number; comm: string; rss: number }> {
  const procs = new Map<number, { ppid: number; comm: string; rss: number }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const fields = stat.slice(close + 2).split(" ");
      const statm = readFileSync(`/proc/${entry}/statm`, "utf8").split(" ");
      procs.set(Number(entry), { ppid: Number(fields[1]), comm, rss: Number(statm[1]) * PAGE });
    } catch {
      // The process ended between listing and reading.
    }
  }
  return procs;
}

function treeRss(root: number): { rss: number; postgres: number } {
  const procs = readProcs();
  const children = new Map<number, number[]>();
  for (const [pid, proc] of procs) {
    const list = children.get(proc.ppid) ?? [];
    list.push(pid);
    children.set(proc.ppid, list);
  }
  let rss = 0;
  let postgres = 0;
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    const proc = procs.get(pid);
    if (proc !== undefined) {
      if (proc.comm === "postgres") postgres += proc.rss;
      else rss += proc.rss;
    }
    stack.push(...(children.get(pid) ?? []));
  }
  return { rss, postgres };
}

export function directoryBytes(dir: string): number {
  let total = 0;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of entries) {
    const file = path.join(dir, name);
    try {
      const stat = statSync(file, { throwIfNoEntry: false });
      if (stat === undefined) continue;
      total += stat.isDirectory() ? directoryBytes(file) : stat.size;
    } catch {
      // Removed while walking.
    }
  }
  return total;
}

/** `times` prints the shell's then its children's user and system time: `0m1.234s 0m0.567s`. */
function parseTimes(text: string): number {
  const lines = text.trim().split("\n");
  const children = lines[1] ?? "";
  let seconds = 0;
  for (const match of children.matchAll(/(\d+)m([\d.]+)s/g))
    seconds += Number(match[1]) * 60 + Number(match[2]);
  return seconds;
}

export function measure(options: MeasureOptions): Promise<Measurement> {
  const script = '"$@"; rc=$?; times >&3; exit $rc';
  const bashArgs = ["-c", script, "bench", options.command, ...options.args];
  const [file, args] =
    options.cpus === undefined
      ? ["bash", bashArgs]
      : ["taskset", ["-c", `0-${options.cpus - 1}`, "bash", ...bashArgs]];
  const started = performance.now();
  const stdoutFd = options.stdoutFile === undefined ? undefined : openSync(options.stdoutFile, "w");
  const child = spawn(file, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["ignore", stdoutFd ?? "ignore", "pipe", "pipe"],
  });
  if (stdoutFd !== undefined) closeSync(stdoutFd);
  let stderr = "";
  let times = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  (child.stdio[3] as NodeJS.ReadableStream).setEncoding("utf8");
  (child.stdio[3] as NodeJS.ReadableStream).on("data", (chunk: string) => {
    times += chunk;
  });
  let peakRss = 0;
  let peakPostgres = 0;
  let peakTemp = 0;
  let peakBoth = 0;
  const sample = () => {
    if (child.pid === undefined) return;
    const { rss, postgres } = treeRss(child.pid);
    const temp = options.tempDir === undefined ? 0 : directoryBytes(options.tempDir);
    peakRss = Math.max(peakRss, rss);
    peakPostgres = Math.max(peakPostgres, postgres);
    peakTemp = Math.max(peakTemp, temp);
    peakBoth = Math.max(peakBoth, rss + temp);
  };
  const timer = setInterval(sample, options.sampleMs ?? 100);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      clearInterval(timer);
      resolve({
        name: options.name,
        exitCode: code ?? 1,
        wallSeconds: (performance.now() - started) / 1000,
        cpuSeconds: parseTimes(times),
        peakRssMiB: peakRss / MiB,
        peakPostgresMiB: peakPostgres / MiB,
        peakTempMiB: peakTemp / MiB,
        peakRssPlusTempMiB: peakBoth / MiB,
        stderrTail: stderr.slice(-1500),
      });
    });
  });
}
