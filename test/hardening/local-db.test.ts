/**
 * Local runs with the embedded PostgreSQL (no DB_* settings) and signals, through the real CLI:
 * concurrent jobs on one root share one server, Ctrl-C reaches the job and not the database, a
 * server that dies mid-run gives exit 1, and a second SIGTERM does not skip the cleanup.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { openDatabase } from "../../src/tasks/db.js";
import {
  blueprint,
  expectNoSecrets,
  expectOutcome,
  type Harness,
  hardeningCase,
  jobEnv,
  runCli,
  startHarness,
} from "./harness.js";
import { place, song, tinyClip } from "./media.js";

let root: string;
let tmp: string;
let h: Harness;

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), "hardening-local-db-"));
  tmp = mkdtempSync(path.join(os.tmpdir(), "hardening-local-db-tmp-"));
  for (const dir of [root, tmp]) {
    // As root the embedded server runs as `postgres`: it must be able to enter the root.
    (await import("node:fs")).chmodSync(dir, 0o711);
  }
  place(root, "songs/song.m4a", song(2));
  place(root, "clips/red.mp4", tinyClip("red"));
  place(root, "clips/blue.mp4", tinyClip("blue"));
  h = await startHarness("hardening-signals");
  place(h.root, "songs/song.m4a", song(2));
  place(h.root, "clips/red.mp4", tinyClip("red"));
});

afterAll(async () => {
  await h?.stop();
  rmSync(root, { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
});

const localEnv = (doc: Record<string, unknown>) => ({
  TMPDIR: tmp,
  LOCAL_STORAGE_ROOT: root,
  BLUEPRINT_JSON: JSON.stringify(doc),
  CLIP_CACHE: "off",
});

/** Reads rows from the root's embedded database (starting it if needed, as a job would). */
async function embeddedRows(ids: string[]): Promise<Array<Record<string, unknown>>> {
  const db = await openDatabase(loadConfig({ LOCAL_STORAGE_ROOT: root }), silentLogger());
  try {
    const { rows } = await db.pool.query(
      "select task_id, status, stage, error from choreography_tasks where task_id = any($1::varchar[]) order by task_id",
      [ids],
    );
    return rows as Array<Record<string, unknown>>;
  } finally {
    await db.close();
  }
}

function expectEmpty(dir: string): void {
  const left = readdirSync(dir);
  for (const name of left) rmSync(path.join(dir, name), { recursive: true, force: true });
  expect(left, `left in ${dir}`).toEqual([]);
}

function postmasterPid(): number {
  return Number(readFileSync(path.join(root, ".pgdata/data/postmaster.pid"), "utf8").split("\n")[0]);
}

/** The process group of `pid` (field 5 of /proc/<pid>/stat). */
function processGroup(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
}

describe("the embedded database shared by local jobs", () => {
  hardeningCase(
    "trust-embedded-concurrent",
    async () => {
      // Started together: one starts the server, the other waits for it; the short one ends first and
      // must not stop the server under the long one.
      const short = randomUUID();
      const long = randomUUID();
      const shortDoc = blueprint(short, [{ clip: "clips/red.mp4", duration: 0.5 }]);
      const longDoc = blueprint(long, [
        { clip: "clips/red.mp4", duration: 1 },
        { clip: "clips/blue.mp4", duration: 1, transition: "crossfade" },
        { clip: "clips/red.mp4", duration: 1, transition: "crossfade" },
        { clip: "clips/blue.mp4", duration: 1, transition: "fade_black" },
      ]);
      const [a, b] = await Promise.all([
        runCli({ env: localEnv(shortDoc), killAfterMs: 120_000 }),
        runCli({ env: localEnv(longDoc), killAfterMs: 120_000 }),
      ]);
      expect(a.code, a.stdout.slice(-1500)).toBe(0);
      expect(b.code, b.stdout.slice(-1500)).toBe(0);
      expect(a.elapsedMs).toBeLessThan(b.elapsedMs);
      const rows = await embeddedRows([short, long]);
      expect(rows.map((row) => row["status"])).toEqual(["completed", "completed"]);
      expectEmpty(tmp);
    },
    180_000,
  );

  hardeningCase(
    "trust-ctrl-c",
    async () => {
      const taskId = randomUUID();
      const doc = blueprint(taskId, [
        { clip: "clips/red.mp4", duration: 1 },
        { clip: "clips/blue.mp4", duration: 1, transition: "crossfade" },
      ]);
      let server = 0;
      let serverGroup = 0;
      let jobGroup = 0;
      const run = await runCli({
        env: localEnv(doc),
        ownProcessGroup: true,
        killAfterMs: 60_000,
        onLine: (line, pid) => {
          if (server !== 0 || !line.includes("Stage fetching done")) return;
          server = postmasterPid();
          serverGroup = processGroup(server);
          jobGroup = processGroup(pid);
          // A terminal's Ctrl-C: SIGINT to the whole foreground process group.
          process.kill(-pid, "SIGINT");
        },
      });
      expect(server).toBeGreaterThan(0);
      expect(run.code, run.stdout.slice(-1500)).toBe(1);
      expect(run.signal).toBeNull();
      // The database was not in the job's group: it was still there to record the failure.
      expect(jobGroup).toBeGreaterThan(0);
      expect(serverGroup).toBeGreaterThan(0);
      expect(serverGroup).not.toBe(jobGroup);
      expect(await embeddedRows([taskId])).toEqual([
        expect.objectContaining({ status: "failed", error: "Job terminated: SIGINT" }),
      ]);
      expectEmpty(tmp);
    },
    120_000,
  );

  hardeningCase(
    "trust-embedded-dies",
    async () => {
      const taskId = randomUUID();
      const doc = blueprint(taskId, [
        { clip: "clips/red.mp4", duration: 1 },
        { clip: "clips/blue.mp4", duration: 1, transition: "crossfade" },
      ]);
      let killed = false;
      const run = await runCli({
        env: localEnv(doc),
        killAfterMs: 90_000,
        onLine: (line) => {
          if (killed || !line.includes("Stage fetching done")) return;
          killed = true;
          process.kill(postmasterPid(), "SIGKILL");
        },
      });
      expect(killed).toBe(true);
      expect(run.code, run.stdout.slice(-2000)).toBe(1);
      expect(run.signal).toBeNull();
      const messages = run.logs.map((log) => String(log["message"]));
      expect(messages.some((message) => message.includes("Database unavailable"))).toBe(true);
      expectEmpty(tmp);
    },
    120_000,
  );
});

describe("signals", () => {
  hardeningCase(
    "trust-double-sigterm",
    async () => {
      const taskId = await h.newTask();
      const doc = blueprint(taskId, [
        { clip: "clips/red.mp4", duration: 1 },
        { clip: "clips/red.mp4", duration: 1, transition: "crossfade" },
      ]);
      let sent = false;
      const run = await runCli({
        env: jobEnv(h, taskId, doc, { CLIP_CACHE: "off" }),
        killAfterMs: 60_000,
        onLine: (line, pid) => {
          if (sent || !line.includes("Stage fetching done")) return;
          sent = true;
          process.kill(pid, "SIGTERM");
          setTimeout(() => process.kill(pid, "SIGTERM"), 15);
        },
      });
      expect(sent).toBe(true);
      const task = await expectOutcome(h, run, taskId, "trust-double-sigterm");
      expect(task.error).toBe("Job terminated: SIGTERM");
    },
    90_000,
  );
});

describe("secrets", () => {
  it("the database password appears in no output and no row of this file", async () => {
    expect(await expectNoSecrets(h)).toBeGreaterThan(0);
  });
});
