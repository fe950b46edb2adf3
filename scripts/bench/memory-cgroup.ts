/**
 * A memory cgroup for one measured run, nested under this process's own (root only): a hard limit like
 * Cloud Run's, and afterwards the peak it saw (RSS + page cache + tmpfs pages of everything inside), how
 * often usage hit the limit and how many processes the OOM killer ended. cgroup v1 (`memory.limit_in_bytes`,
 * `memory.max_usage_in_bytes`, `memory.failcnt`, `memory.oom_control`) or v2 (`memory.max`, `memory.peak`,
 * `memory.events`).
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { limitHits, memoryCgroupOf, oomKills } from "./production.js";

const CGROUP_ROOT = "/sys/fs/cgroup";
const MiB = 1024 * 1024;

export interface CgroupReading {
  /** Peak charged memory, MiB (undefined when the kernel keeps no peak: v2 before Linux 5.19). */
  peakMiB: number | undefined;
  /** Times usage reached the limit (reclaim, then OOM if reclaim failed). */
  limitHits: number | undefined;
  oomKills: number | undefined;
}

export interface RunCgroup {
  /** What it is, for the report: "cgroup v1, limit 512 MiB". */
  description: string;
  /** Write a pid here to move that process in (its children follow). */
  procsFile: string;
  read(): CgroupReading;
  /**
   * Removes the cgroup (SIGTERM to any process still in it first); charges left by page cache move to
   * the parent.
   */
  remove(): Promise<void>;
}

function readNumber(file: string): number | undefined {
  try {
    const text = readFileSync(file, "utf8").trim();
    return /^\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

/** Best effort: a setting some kernels lack (swap accounting) must not stop the run. */
function tryWrite(file: string, value: string): void {
  try {
    if (existsSync(file)) writeFileSync(file, value);
  } catch {
    // Not supported here.
  }
}

/**
 * Creates the cgroup `name` under this process's memory cgroup with `limitBytes` as its hard limit, or
 * says why it cannot (not root, no memory controller, a v2 parent that cannot delegate it).
 */
export function createRunCgroup(name: string, limitBytes: number): RunCgroup | { unavailable: string } {
  if (process.getuid?.() !== 0) return { unavailable: "needs root" };
  const own = memoryCgroupOf(readText("/proc/self/cgroup"));
  if (own === undefined) return { unavailable: "no memory cgroup in /proc/self/cgroup" };
  const parent =
    own.version === 1 ? path.join(CGROUP_ROOT, "memory", own.path) : path.join(CGROUP_ROOT, own.path);
  const dir = path.join(parent, name);
  try {
    if (own.version === 2) {
      // A v2 child gets the memory controller only from its parent's subtree_control; that fails when
      // the parent holds processes itself (the "no internal processes" rule) — then there is no cgroup.
      writeFileSync(path.join(parent, "cgroup.subtree_control"), "+memory");
    }
    mkdirSync(dir);
    if (own.version === 1) {
      writeFileSync(path.join(dir, "memory.limit_in_bytes"), String(limitBytes));
      // Cloud Run has no swap: memory+swap gets the same limit where swap is accounted.
      tryWrite(path.join(dir, "memory.memsw.limit_in_bytes"), String(limitBytes));
    } else {
      writeFileSync(path.join(dir, "memory.max"), String(limitBytes));
      tryWrite(path.join(dir, "memory.swap.max"), "0");
    }
  } catch (error) {
    try {
      rmdirSync(dir);
    } catch {
      // Never created.
    }
    return {
      unavailable: `cgroup v${own.version} at ${dir}: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
  const file = (leaf: string) => path.join(dir, leaf);
  return {
    description: `cgroup v${own.version}, limit ${Math.round(limitBytes / MiB)} MiB`,
    procsFile: file("cgroup.procs"),
    read() {
      if (own.version === 1) {
        const peak = readNumber(file("memory.max_usage_in_bytes"));
        return {
          peakMiB: peak === undefined ? undefined : peak / MiB,
          limitHits: readNumber(file("memory.failcnt")),
          oomKills: oomKills(readText(file("memory.oom_control"))),
        };
      }
      const peak = readNumber(file("memory.peak"));
      const events = readText(file("memory.events"));
      return {
        peakMiB: peak === undefined ? undefined : peak / MiB,
        limitHits: limitHits(events),
        oomKills: oomKills(events),
      };
    },
    async remove() {
      if (!existsSync(dir)) return;
      // Interrupted mid-run: the run's processes (started by this script) are asked to stop first.
      for (const pid of readText(file("cgroup.procs"))
        .split("\n")
        .filter((line) => /^\d+$/.test(line))) {
        try {
          process.kill(Number(pid), "SIGTERM");
        } catch {
          // Gone meanwhile.
        }
      }
      // The last process may still be leaving (the job stops within 5 s of SIGTERM).
      for (let attempt = 0; attempt < 100; attempt += 1) {
        try {
          rmdirSync(dir);
          return;
        } catch {
          await sleep(100);
        }
      }
      process.stderr.write(`could not remove ${dir}\n`);
    },
  };
}
