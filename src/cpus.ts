/**
 * The CPUs this process is actually granted: the smallest of the cgroup CPU quota (v2 `cpu.max`, v1
 * `cpu.cfs_quota_us` / `cpu.cfs_period_us`) and the CPU affinity (`os.availableParallelism()`, which
 * follows `taskset` and cpusets). Cloud Run enforces its vCPU limit by quota, not affinity, so a job
 * granted 1 vCPU may still see every core of the host; FFmpeg's thread counts and the job's render
 * concurrency come from this number instead.
 */
import { readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

export interface CpuSources {
  /** Contents of cgroup v2 `cpu.max` ("max 100000" or "<quota> <period>"), one per cgroup level. */
  cpuMax?: readonly string[];
  /** Contents of cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`, one pair per cgroup level. */
  cfs?: readonly { quotaUs: string; periodUs: string }[];
  /** CPUs the scheduler lets this process run on. */
  affinity: number;
}

export interface GrantedCpus {
  /** Whole CPUs to plan for: ≥ 1. */
  cpus: number;
  /** The quota in CPUs (e.g. 1.5) when a cgroup sets one. */
  quota?: number;
  /** Which limit decided `cpus`. */
  source: "cgroup v2 cpu.max" | "cgroup v1 cfs quota" | "affinity";
}

/** cgroup v2 `cpu.max`: "200000 100000" → 2; "max 100000" (no limit) or anything unreadable → undefined. */
export function parseCpuMax(text: string): number | undefined {
  const [quota, period = "100000"] = text.trim().split(/\s+/);
  if (quota === undefined || quota === "max") return undefined;
  return ratio(quota, period);
}

/** cgroup v1: quota -1 (no limit) or anything unreadable → undefined; else quota / period. */
export function parseCfsQuota(quotaUs: string, periodUs: string): number | undefined {
  return ratio(quotaUs.trim(), periodUs.trim());
}

function ratio(quota: string, period: string): number | undefined {
  if (!/^\d+$/.test(quota) || !/^\d+$/.test(period)) return undefined;
  const q = Number(quota);
  const p = Number(period);
  return q > 0 && p > 0 ? q / p : undefined;
}

/**
 * The smallest of every limit found. A fractional quota is rounded down (1.5 CPUs: one FFmpeg thread
 * keeps the quota busy without being throttled mid-frame), never below 1.
 */
export function grantedCpus(sources: CpuSources): GrantedCpus {
  const affinity = Math.max(1, Math.floor(sources.affinity));
  let quota: number | undefined;
  let quotaSource: GrantedCpus["source"] = "affinity";
  const consider = (value: number | undefined, source: GrantedCpus["source"]) => {
    if (value !== undefined && (quota === undefined || value < quota)) {
      quota = value;
      quotaSource = source;
    }
  };
  for (const text of sources.cpuMax ?? []) consider(parseCpuMax(text), "cgroup v2 cpu.max");
  for (const { quotaUs, periodUs } of sources.cfs ?? []) {
    consider(parseCfsQuota(quotaUs, periodUs), "cgroup v1 cfs quota");
  }
  if (quota === undefined) return { cpus: affinity, source: "affinity" };
  const fromQuota = Math.max(1, Math.floor(quota));
  return fromQuota <= affinity
    ? { cpus: fromQuota, quota, source: quotaSource }
    : { cpus: affinity, quota, source: "affinity" };
}

/** The cgroup path of this process per hierarchy, from `/proc/self/cgroup` ("0::/a/b" for v2). */
export function parseProcCgroup(text: string): { v2?: string; cpu?: string } {
  const result: { v2?: string; cpu?: string } = {};
  for (const line of text.split("\n")) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (match === null) continue;
    const [, id, controllers = "", cgroupPath = "/"] = match;
    if (id === "0" && controllers === "") result.v2 = cgroupPath;
    else if (controllers.split(",").includes("cpu")) result.cpu = cgroupPath;
  }
  return result;
}

/** The cgroup directory and each of its parents up to the mount point (a limit can sit on any level). */
function levels(mount: string, cgroupPath: string | undefined): string[] {
  const dirs: string[] = [];
  let current = path.posix.normalize(`/${cgroupPath ?? ""}`);
  for (;;) {
    dirs.push(path.join(mount, current));
    if (current === "/") return dirs;
    current = path.posix.dirname(current);
  }
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * Reads the limits of this process (Linux; elsewhere only the affinity counts). `root` is "/" except
 * in tests, which lay out a fake `proc/` and `sys/fs/cgroup/`.
 */
export async function readGrantedCpus(
  options: { root?: string; affinity?: number } = {},
): Promise<GrantedCpus> {
  const root = options.root ?? "/";
  const affinity = options.affinity ?? os.availableParallelism();
  const own = parseProcCgroup((await readText(path.join(root, "proc/self/cgroup"))) ?? "");
  const cgroupRoot = path.join(root, "sys/fs/cgroup");

  const cpuMax: string[] = [];
  for (const dir of levels(cgroupRoot, own.v2)) {
    const text = await readText(path.join(dir, "cpu.max"));
    if (text !== undefined) cpuMax.push(text);
  }
  const cfs: { quotaUs: string; periodUs: string }[] = [];
  for (const mount of ["cpu", "cpu,cpuacct", "cpuacct,cpu"]) {
    for (const dir of levels(path.join(cgroupRoot, mount), own.cpu)) {
      const quotaUs = await readText(path.join(dir, "cpu.cfs_quota_us"));
      const periodUs = await readText(path.join(dir, "cpu.cfs_period_us"));
      if (quotaUs !== undefined && periodUs !== undefined) cfs.push({ quotaUs, periodUs });
    }
  }
  return grantedCpus({ cpuMax, cfs, affinity });
}

/** FFmpeg runs at once never exceed this, whatever the CPUs: each holds its own frames in memory. */
export const MAX_RENDER_CONCURRENCY = 8;
