/**
 * Several local jobs on one storage root share one embedded PostgreSQL (docs/decisions/task-store.md):
 * a lock file serialises initdb, start and stop; each job registers itself in `users/` while it uses
 * the server; the last one to leave stops it. Entries of processes that died (SIGKILL) are ignored.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { JobError } from "../errors.js";
import { processAlive } from "./embedded.js";

/** Longer than an initdb plus a start (30 s) on a slow machine. */
const LOCK_TIMEOUT_MS = 90_000;

/**
 * Runs `fn` holding `<base>/server.lock` (exclusive create; a lock left by a dead process is taken
 * over). Waits for another holder, at most LOCK_TIMEOUT_MS.
 */
export async function withServerLock<T>(base: string, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(base, "server.lock");
  const deadline = performance.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    try {
      await writeFile(lock, `${process.pid}\n`, { flag: "wx", mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = Number((await readFile(lock, "utf8").catch(() => "")).trim());
      if (Number.isInteger(holder) && holder > 0 && !processAlive(holder)) {
        await rm(lock, { force: true });
        continue;
      }
      if (performance.now() > deadline) {
        throw new JobError(
          `The embedded PostgreSQL in ${base} is locked by process ${holder} for too long; if no job is running, delete ${lock}`,
          { code: "DATABASE_ERROR", retryable: true },
        );
      }
      await sleep(50 + Math.random() * 50);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}

export interface ServerUser {
  /** Removes this job's entry (idempotent, synchronous: also used on exit). */
  leave(): void;
  /** Whether any other live process still uses the server. */
  othersRemain(): boolean;
}

/** Registers this job as a user of the server in `<base>/users/<pid>-<random>`. */
export async function joinServer(base: string): Promise<ServerUser> {
  const dir = path.join(base, "users");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const name = `${process.pid}-${randomBytes(4).toString("hex")}`;
  await writeFile(path.join(dir, name), "", { mode: 0o600 });
  let left = false;
  return {
    leave() {
      if (left) return;
      left = true;
      rmSync(path.join(dir, name), { force: true });
    },
    othersRemain() {
      mkdirSync(dir, { recursive: true });
      return readdirSync(dir).some((entry) => {
        if (entry === name) return false;
        const pid = Number(entry.split("-")[0]);
        if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) return true;
        // A job that died without leaving.
        rmSync(path.join(dir, entry), { force: true });
        return false;
      });
    },
  };
}
