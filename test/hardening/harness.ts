/**
 * Shared harness for the hardening suites: runs the built CLI (`dist/main.js`) as Cloud Run does
 * (env vars only), exposes the child so a test can signal it or kill its FFmpeg, records every
 * output for the secrets check, and gives each case its own task row.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type pg from "pg";
import { expect, it } from "vitest";
import { type MoveSpec, runDocument } from "../helpers/blueprints.js";
import { type Run, type RunOptions, runCli as runCliProcess } from "../helpers/cli.js";
import {
  insertPendingTask,
  startPostgres,
  type TaskTableRow,
  type TestPostgres,
  taskRow,
} from "../helpers/postgres.js";
import { caseById } from "./cases.js";

export type { Run, RunOptions } from "../helpers/cli.js";
export { commandOf, descendants } from "../helpers/cli.js";
export type { TaskTableRow } from "../helpers/postgres.js";

/** Every run of this test file, for the secrets check. */
export const allRuns: Run[] = [];

/** Runs the built CLI and records the run for the secrets check. */
export async function runCli(options: RunOptions): Promise<Run> {
  const run = await runCliProcess(options);
  allRuns.push(run);
  return run;
}

export interface Harness {
  postgres: TestPostgres;
  pool: pg.Pool;
  /** LOCAL_STORAGE_ROOT of the runs. */
  root: string;
  /** TMPDIR of the runs: must be empty after every run. */
  tmp: string;
  /** A password with a marker, generated at runtime. */
  password: string;
  dbEnv(): Record<string, string>;
  /** A fresh pending row owned by USER_ID; returns its id. */
  newTask(): Promise<string>;
  row(taskId: string): Promise<TaskTableRow>;
  stop(): Promise<void>;
}

export const USER_ID = 42;

/** `privateServer`: a PostgreSQL of the harness's own, for tests that stop and start it. */
export async function startHarness(
  prefix: string,
  options: { privateServer?: boolean } = {},
): Promise<Harness> {
  const password = `Hardening-Secret-${randomBytes(9).toString("hex")}`;
  const root = mkdtempSync(path.join(os.tmpdir(), `${prefix}-root-`));
  const tmp = mkdtempSync(path.join(os.tmpdir(), `${prefix}-tmp-`));
  const postgres = await startPostgres({ password, ...options });
  const pool = postgres.pool;
  return {
    postgres,
    pool,
    root,
    tmp,
    password,
    dbEnv: () => ({
      DB_HOST: postgres.config.host,
      DB_PORT: String(postgres.config.port),
      DB_NAME: postgres.config.name,
      DB_USER: postgres.config.user,
      DB_PASSWORD: password,
    }),
    async newTask() {
      const id = randomUUID();
      await insertPendingTask(pool, id, USER_ID);
      return id;
    },
    async row(taskId) {
      return (await taskRow(pool, taskId))!;
    },
    async stop() {
      await postgres.stop();
      rmSync(root, { recursive: true, force: true });
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/**
 * The env of a CLI run against the harness, as the API starts an execution: temp dir, storage root,
 * database, the task and its owner, and the blueprint (a document is serialised; none when the run
 * passes `--blueprint FILE`). `extra` adds or overrides variables.
 */
export function jobEnv(
  h: Harness,
  taskId: string,
  doc?: Record<string, unknown> | string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    TMPDIR: h.tmp,
    LOCAL_STORAGE_ROOT: h.root,
    TASK_ID: taskId,
    USER_ID: String(USER_ID),
    ...(doc === undefined ? {} : { BLUEPRINT_JSON: typeof doc === "string" ? doc : JSON.stringify(doc) }),
    ...h.dbEnv(),
    ...extra,
  };
}

/** The temp directory holds nothing (the job's `video-job-*` directory is gone). */
export function expectNoTemp(h: Harness): void {
  const left = readdirSync(h.tmp);
  // Cleared before asserting, so one leak fails one test, not every later one.
  for (const name of left) rmSync(path.join(h.tmp, name), { recursive: true, force: true });
  expect(left, `temp left: ${JSON.stringify(left)}`).toEqual([]);
}

/** Nothing visible under the storage root's `output/` (no video, no half-written temp name). */
export function expectNoOutput(h: Harness, dir = "output"): void {
  const full = path.join(h.root, dir);
  expect(existsSync(full) ? readdirSync(full) : []).toEqual([]);
}

/**
 * The run ended with `code`, the row is failed at `stage` with an error containing `excerpt`, and
 * nothing was left behind. No stack trace anywhere in the row or on stderr.
 */
export async function expectFailed(
  h: Harness,
  run: Run,
  taskId: string,
  expected: { code: number; stage: string; error: string | RegExp; errorCode?: string },
): Promise<TaskTableRow> {
  const task = await h.row(taskId);
  const context = `stderr: ${run.stderr.slice(0, 500)}\nrow: ${JSON.stringify(task)}`;
  expect(run.code, context).toBe(expected.code);
  expect(task.status, context).toBe("failed");
  expect(task.stage, context).toBe(expected.stage);
  if (typeof expected.error === "string") expect(task.error, context).toContain(expected.error);
  else expect(task.error, context).toMatch(expected.error);
  if (expected.errorCode !== undefined) expect(task.result?.["code"]).toBe(expected.errorCode);
  expect(task.error).not.toMatch(/\n\s+at |Internal error/);
  expect(task.error).not.toContain(h.tmp);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(run.signal).toBeNull();
  expectNoTemp(h);
  return task;
}

/** Every run and every row of this file: the password never appears. */
export async function expectNoSecrets(h: Harness, extra: string[] = []): Promise<number> {
  const { rows } = await h.pool.query("select row_to_json(t)::text as text from choreography_tasks t");
  const texts = [
    ...allRuns.flatMap((run) => [run.stdout, run.stderr]),
    ...rows.map((r: { text: string }) => r.text),
  ];
  for (const secret of [h.password, ...extra]) {
    for (const text of texts) expect(text.includes(secret), "a secret leaked").toBe(false);
  }
  return texts.length;
}

export type { MoveSpec } from "../helpers/blueprints.js";
export { ffmpeg } from "../helpers/fixtures.js";

/** A tiling blueprint. */
export function blueprint(
  taskId: string,
  moves: MoveSpec[],
  extra: Record<string, unknown> = {},
  outputPath = `output/${taskId}.mp4`,
): Record<string, unknown> {
  return runDocument(moves, { taskId, outputPath, transitionDuration: 0.2, roundStarts: true }, extra);
}

/** Runs `tasks` with at most `limit` at once. */
export async function inParallel<T>(limit: number, tasks: Array<() => Promise<T>>): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const index = next++;
      results[index] = await tasks[index]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

/** Registers the test of a case from cases.ts (the docs test checks every case has one). */
export function hardeningCase(id: string, fn: () => Promise<void>, timeoutMs?: number): void {
  const c = caseById(id);
  it(`${c.id}: ${c.title}`, fn, timeoutMs);
}

/** Asserts the run and the row match the case's documented outcome, and nothing was left behind. */
export async function expectOutcome(
  h: Harness,
  run: Run,
  taskId: string,
  id: string,
  options: { checkTemp?: boolean; outputKey?: string; error?: string | undefined; code?: string } = {},
): Promise<TaskTableRow> {
  const { outcome } = caseById(id);
  const task = await h.row(taskId);
  const context = `case ${id}\nexit ${run.code}\nstderr: ${run.stderr.slice(0, 800)}\nrow: ${JSON.stringify(task)?.slice(0, 1500)}`;
  expect(run.signal, context).toBeNull();
  expect(run.code, context).toBe(outcome.exit);
  expect(run.stderr, context).not.toMatch(/\n\s+at /);
  if (outcome.status === "completed") {
    expect(task?.status, context).toBe("completed");
    expect(task?.progress).toBe(100);
  } else if (outcome.status === "failed") {
    expect(task?.status, context).toBe("failed");
    expect(task?.stage, context).toBe(outcome.stage);
    const code = options.code ?? outcome.code;
    if (code !== undefined) expect(task?.result?.["code"], context).toBe(code);
    const excerpt = options.error ?? outcome.error;
    if (excerpt !== undefined) expect(task?.error, context).toContain(excerpt);
    expect(task?.error, context).not.toMatch(/\n\s+at |Internal error/);
    expect(task?.error, context).not.toContain(h.tmp);
    if (options.outputKey !== undefined) expect(existsSync(path.join(h.root, options.outputKey))).toBe(false);
  }
  if (options.checkTemp !== false) expectNoTemp(h);
  return task;
}
