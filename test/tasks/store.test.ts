import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  it,
  type MockInstance,
  vi,
} from "vitest";
import { JobError } from "../../src/errors.js";
import { silentLogger } from "../../src/log.js";
import { createPool } from "../../src/tasks/db.js";
import { isConnectionError } from "../../src/tasks/retry.js";
import {
  createTaskStore,
  isAlreadyCompleted,
  isRecordedPermanentFailure,
  type TaskResult,
  type TaskRow,
  type TaskStoreOptions,
} from "../../src/tasks/store.js";
import { captureLogs } from "../helpers/log-capture.js";
import { startPostgres, type TestPostgres } from "../helpers/postgres.js";

const TASK_ID = "0b4c1d2e-aaaa-4bbb-8ccc-0000000000a1";
const OTHER_TASK_ID = "0b4c1d2e-aaaa-4bbb-8ccc-0000000000b2";
const OWNER = 41;
const STRANGER = 42;

const RESULT: TaskResult = {
  video_url: "file:///srv/data/output/choreography.mp4",
  output_path: "output/choreography.mp4",
  moves_count: 3,
  num_moves: 3,
  file_size: 123456,
  duration: 24,
  total_duration: 24,
  width: 1280,
  height: 720,
  fps: 30,
  video_codec: "h264",
  audio_codec: "aac",
  render_seconds: 4.25,
  warnings: ["moves[2]: source clip shorter than the move; last frame held"],
};

let postgres: TestPostgres;
/** The store's own pool (as openDatabase makes it), spied on to count statements. */
let storePool: pg.Pool;
let querySpy: MockInstance<(sql: unknown, params?: unknown) => unknown>;

beforeAll(async () => {
  // Its own server: the fault tests stop it, and one test ends every session holding an advisory lock.
  postgres = await startPostgres({ privateServer: true });
});

afterAll(async () => {
  await postgres?.stop();
});

beforeEach(async () => {
  await postgres.pool.query("delete from choreography_tasks");
  await postgres.pool.query(
    "insert into choreography_tasks (task_id, user_id, status) values ($1::varchar, $2::bigint, 'pending'), ($3::varchar, $2::bigint, 'pending')",
    [TASK_ID, OWNER, OTHER_TASK_ID],
  );
  const { host, port, name, user, password } = postgres.config;
  storePool = createPool({ host, port, database: name, user, password }, silentLogger());
  querySpy = vi.spyOn(storePool, "query") as unknown as typeof querySpy;
});

afterEach(async () => {
  await storePool.end();
});

function store(options: Partial<TaskStoreOptions> = {}) {
  return createTaskStore(storePool, { logger: silentLogger(), userId: OWNER, ...options });
}

async function row(taskId = TASK_ID): Promise<Record<string, unknown>> {
  const { rows } = await postgres.pool.query("select * from choreography_tasks where task_id = $1::varchar", [
    taskId,
  ]);
  return rows[0] as Record<string, unknown>;
}

/** The row exactly as Postgres prints it: equal text means nothing changed, updated_at included. */
async function rowText(taskId = TASK_ID): Promise<string> {
  const { rows } = await postgres.pool.query<{ text: string }>(
    "select t::text as text from choreography_tasks t where task_id = $1::varchar",
    [taskId],
  );
  return rows[0]!.text;
}

/** Statements the store sent, by kind. */
function statements(kind: "select" | "insert" | "update" | "progress") {
  return querySpy.mock.calls
    .map((call) => String(call[0]))
    .filter((sql) =>
      kind === "progress" ? sql.includes("status = 'running'") : sql.trimStart().startsWith(kind),
    );
}

async function rejection(promise: Promise<unknown>): Promise<JobError> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(JobError);
  return error as JobError;
}

describe("status transitions", () => {
  it("load → start → progress → complete, with the exact stored values", async () => {
    const tasks = store({ throttleMs: 0 });
    const loaded: TaskRow = await tasks.load(TASK_ID);
    expect(loaded).toMatchObject({
      task_id: TASK_ID,
      user_id: OWNER,
      status: "pending",
      progress: 0,
      result: null,
      error: null,
    });
    expect(loaded.updated_at).toBeInstanceOf(Date);

    await tasks.start(TASK_ID, "Validating blueprint");
    expect(await row()).toMatchObject({
      status: "started",
      stage: "validation",
      progress: 5,
      message: "Validating blueprint",
      result: null,
      error: null,
    });

    await tasks.progress(TASK_ID, { progress: 42.4, stage: "rendering", message: "Rendering 5%" });
    expect(await row()).toMatchObject({
      status: "running",
      stage: "rendering",
      progress: 42,
      message: "Rendering 5%",
    });

    const before = (await row())["updated_at"] as Date;
    await tasks.complete(TASK_ID, RESULT);
    const done = await row();
    expect(done).toMatchObject({ status: "completed", progress: 100, stage: "completed", error: null });
    expect(done["result"]).toEqual(RESULT);
    expect((done["updated_at"] as Date).getTime()).toBeGreaterThanOrEqual(before.getTime());
    expect(await rowText(OTHER_TASK_ID)).toContain("pending");
  });

  it("fail records the stage, the error and {error, code, stage, retryable}", async () => {
    const tasks = store();
    await tasks.start(TASK_ID, "Validating blueprint");
    await tasks.fail(TASK_ID, {
      stage: "fetching",
      error: "Storage key not found: clips/missing.mp4",
      code: "STORAGE_NOT_FOUND",
      retryable: false,
    });
    const failed = await row();
    expect(failed).toMatchObject({
      status: "failed",
      stage: "fetching",
      progress: 5,
      error: "Storage key not found: clips/missing.mp4",
    });
    expect(failed["result"]).toEqual({
      error: "Storage key not found: clips/missing.mp4",
      code: "STORAGE_NOT_FOUND",
      stage: "fetching",
      retryable: false,
    });
  });

  it("fail stores the blueprint's sha256 when given; isRecordedPermanentFailure needs a permanent code and the same sha", async () => {
    const tasks = store();
    const sha = "a".repeat(64);
    await tasks.fail(TASK_ID, {
      stage: "validation",
      error: "Invalid blueprint (1 problem): audio_path: Missing required field: audio_path",
      code: "INVALID_BLUEPRINT",
      retryable: false,
      blueprint_sha256: sha,
    });
    const loaded = await store().load(TASK_ID);
    expect(loaded.result).toMatchObject({ code: "INVALID_BLUEPRINT", blueprint_sha256: sha });
    expect(isRecordedPermanentFailure(loaded, sha)).toBe(true);
    expect(isRecordedPermanentFailure(loaded, "b".repeat(64))).toBe(false);
    await store().fail(TASK_ID, {
      stage: "fetching",
      error: "Media file not found: x.mp4",
      code: "STORAGE_NOT_FOUND",
      retryable: false,
      blueprint_sha256: sha,
    });
    expect(isRecordedPermanentFailure(await store().load(TASK_ID), sha)).toBe(false);
  });

  it("start clears a previous failure (a retried execution)", async () => {
    const tasks = store();
    await tasks.fail(TASK_ID, { stage: "rendering", error: "boom", code: "FFMPEG_FAILED", retryable: true });
    await store().start(TASK_ID, "Validating blueprint");
    expect(await row()).toMatchObject({ status: "started", result: null, error: null, progress: 5 });
  });

  it("ensure inserts a missing row as pending and leaves an existing one alone", async () => {
    const existing = await rowText();
    expect(await store().ensure(TASK_ID, STRANGER)).toBe(false);
    expect(await rowText()).toBe(existing);

    const fresh = "0b4c1d2e-aaaa-4bbb-8ccc-0000000000c3";
    expect(await store().ensure(fresh, OWNER)).toBe(true);
    expect(await row(fresh)).toMatchObject({ status: "pending", user_id: String(OWNER), progress: 0 });
  });

  it("isAlreadyCompleted needs status completed and the same output_path", async () => {
    const tasks = store();
    expect(isAlreadyCompleted(await tasks.load(TASK_ID), RESULT.output_path)).toBe(false);
    await tasks.complete(TASK_ID, RESULT);
    const completed = await store().load(TASK_ID);
    expect(isAlreadyCompleted(completed, RESULT.output_path)).toBe(true);
    expect(isAlreadyCompleted(completed, "output/other.mp4")).toBe(false);
  });
});

describe("ownership and missing rows", () => {
  it("a missing row is TASK_NOT_FOUND before any write", async () => {
    const missing = "0b4c1d2e-aaaa-4bbb-8ccc-0000000000ff";
    const error = await rejection(store().load(missing));
    expect(error.code).toBe("TASK_NOT_FOUND");
    expect(error.message).toBe(`Task ${missing} not found`);
    expect(querySpy).toHaveBeenCalledTimes(1);
    expect(statements("select")).toHaveLength(1);
  });

  it("another USER_ID is refused without naming the owner, and updates nothing", async () => {
    const before = await rowText();
    const tasks = store({ userId: STRANGER, throttleMs: 0 });

    const forbidden = await rejection(tasks.load(TASK_ID));
    expect(forbidden.code).toBe("TASK_FORBIDDEN");
    expect(forbidden.message).not.toContain(String(OWNER));

    expect((await rejection(tasks.start(TASK_ID, "x"))).code).toBe("TASK_NOT_FOUND");
    await tasks.progress(TASK_ID, { progress: 50, stage: "rendering", message: "x" });
    await tasks.flush();
    expect(
      (
        await rejection(
          tasks.fail(TASK_ID, { stage: "validation", error: "x", code: "INTERNAL", retryable: false }),
        )
      ).code,
    ).toBe("TASK_NOT_FOUND");
    expect((await rejection(tasks.complete(TASK_ID, RESULT))).code).toBe("TASK_NOT_FOUND");

    expect(await rowText()).toBe(before);
  });
});

describe("progress", () => {
  it("never moves backwards, within the execution or in the row", async () => {
    const tasks = store({ throttleMs: 0 });
    await tasks.start(TASK_ID, "go");
    await tasks.progress(TASK_ID, { progress: 40, stage: "rendering", message: "Rendering" });
    await tasks.progress(TASK_ID, { progress: 30, stage: "fetching", message: "late fetch event" });
    expect(await row()).toMatchObject({ progress: 40, stage: "rendering" });
    expect(statements("progress")).toHaveLength(1);

    // Another store (no memory of 40) still cannot lower the row.
    await store({ throttleMs: 0 }).progress(TASK_ID, { progress: 20, stage: "fetching", message: "x" });
    expect(await row()).toMatchObject({ progress: 40, stage: "rendering" });
  });

  it("never overwrites a completed or failed row", async () => {
    const tasks = store({ throttleMs: 0 });
    await tasks.complete(TASK_ID, RESULT);
    const completed = await rowText();
    await tasks.progress(TASK_ID, { progress: 99, stage: "uploading", message: "late" });
    await store({ throttleMs: 0 }).progress(TASK_ID, { progress: 99, stage: "uploading", message: "late" });
    expect(await rowText()).toBe(completed);

    await store().fail(OTHER_TASK_ID, { stage: "rendering", error: "x", code: "INTERNAL", retryable: false });
    const failed = await rowText(OTHER_TASK_ID);
    await store({ throttleMs: 0 }).progress(OTHER_TASK_ID, {
      progress: 99,
      stage: "uploading",
      message: "late",
    });
    expect(await rowText(OTHER_TASK_ID)).toBe(failed);
  });

  it("is throttled to one write per 2 s: leading value now, latest value at the trailing edge", async () => {
    const tasks = store();
    await tasks.start(TASK_ID, "go");
    const t0 = performance.now();
    for (const progress of [20, 25, 30, 35, 40]) {
      await tasks.progress(TASK_ID, { progress, stage: "fetching", message: `at ${progress}` });
    }
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(statements("progress")).toHaveLength(1);
    expect(await row()).toMatchObject({ progress: 20 });

    await vi.waitFor(async () => expect(await row()).toMatchObject({ progress: 40, message: "at 40" }), {
      timeout: 4000,
      interval: 100,
    });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1900);
    expect(statements("progress")).toHaveLength(2);
  });

  it("flush writes the pending value now", async () => {
    const tasks = store();
    await tasks.start(TASK_ID, "go");
    await tasks.progress(TASK_ID, { progress: 20, stage: "fetching", message: "a" });
    await tasks.progress(TASK_ID, { progress: 30, stage: "fetching", message: "b" });
    expect(await row()).toMatchObject({ progress: 20 });
    await tasks.flush();
    expect(await row()).toMatchObject({ progress: 30, message: "b" });
    expect(statements("progress")).toHaveLength(2);
  });

  it("complete cancels a pending value and waits for one in flight", async () => {
    const tasks = store({ throttleMs: 50 });
    await tasks.start(TASK_ID, "go");
    const inFlight = tasks.progress(TASK_ID, { progress: 60, stage: "rendering", message: "in flight" });
    void tasks.progress(TASK_ID, { progress: 70, stage: "rendering", message: "pending" });
    await tasks.complete(TASK_ID, RESULT);
    await inFlight;
    await sleep(150);
    expect(await row()).toMatchObject({ status: "completed", progress: 100, stage: "completed" });
    expect(statements("progress")).toHaveLength(1);
    await tasks.progress(TASK_ID, { progress: 99, stage: "cleanup", message: "after" });
    await tasks.flush();
    expect(statements("progress")).toHaveLength(1);
  });
});

describe("concurrent executions of one task (docs/decisions/task-store.md)", () => {
  it("a failure after completion leaves the completed row unchanged", async () => {
    const first = store({ throttleMs: 0 });
    const late = store({ throttleMs: 0 });
    await late.start(TASK_ID, "late execution");
    await first.start(TASK_ID, "go");
    await first.complete(TASK_ID, RESULT);
    const completed = await rowText();
    await late.progress(TASK_ID, { progress: 50, stage: "rendering", message: "late" });
    await late.fail(TASK_ID, {
      stage: "rendering",
      error: "Job terminated: SIGTERM",
      code: "TERMINATED",
      retryable: true,
    });
    expect(await rowText()).toBe(completed);
    expect(await row()).toMatchObject({ status: "completed", error: null });
    // A missing row is still reported.
    await expect(
      store().fail("0b4c1d2e-aaaa-4bbb-8ccc-00000000dead", {
        stage: "x",
        error: "x",
        code: "INTERNAL",
        retryable: false,
      }),
    ).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });
  });

  it("one execution claims the task; another is refused until the claim is released or its connection dies", async () => {
    const first = store();
    const second = store();
    expect(await first.claim(TASK_ID)).toBe(true);
    expect(await second.claim(TASK_ID)).toBe(false);
    // Other tasks are independent.
    expect(await second.claim(OTHER_TASK_ID)).toBe(true);
    await second.release();
    await first.release();
    expect(await second.claim(TASK_ID)).toBe(true);
    await second.release();

    // A killed execution: its session ends, and so does its claim.
    const { host, port, name, user, password } = postgres.config;
    const otherPool = createPool({ host, port, database: name, user, password }, silentLogger());
    try {
      const killed = createTaskStore(otherPool, { logger: silentLogger(), userId: OWNER });
      expect(await killed.claim(TASK_ID)).toBe(true);
      expect(await store().claim(TASK_ID)).toBe(false);
      await postgres.pool.query(
        "select pg_terminate_backend(pid) from pg_locks where locktype = 'advisory' and granted",
      );
      await vi.waitFor(async () => {
        const again = store();
        expect(await again.claim(TASK_ID)).toBe(true);
        await again.release();
      });
      await killed.release();
    } finally {
      await otherPool.end().catch(() => {});
    }
  });
});

describe("database faults", () => {
  it("classifies connection errors, never SQL errors", () => {
    const coded = (code: string, message = "x") => Object.assign(new Error(message), { code });
    for (const code of [
      "08006",
      "08001",
      "57P01",
      "57P02",
      "57P03",
      "ECONNREFUSED",
      "ECONNRESET",
      "EAI_AGAIN",
    ]) {
      expect(isConnectionError(coded(code)), code).toBe(true);
    }
    expect(isConnectionError(new Error("Connection terminated unexpectedly"))).toBe(true);
    expect(isConnectionError(new AggregateError([coded("ECONNREFUSED")]))).toBe(true);
    for (const code of ["22001", "23505", "42P01", "40001", "57014"]) {
      expect(isConnectionError(coded(code)), code).toBe(false);
    }
    expect(isConnectionError(new Error("boom"))).toBe(false);
  });

  it("a SQL error is not retried", async () => {
    const tasks = store();
    const t0 = performance.now();
    const error = await rejection(
      tasks.fail(TASK_ID, { stage: "s".repeat(51), error: "x", code: "INTERNAL", retryable: false }),
    );
    expect(performance.now() - t0).toBeLessThan(900);
    expect(error.code).toBe("DATABASE_ERROR");
    expect(error.retryable).toBe(false);
    expect(querySpy).toHaveBeenCalledTimes(1);
  });

  it("a stopped server makes progress fail softly; the next write after restart lands", async () => {
    const logs = captureLogs();
    const tasks = store({ throttleMs: 0, logger: logs.logger });
    await tasks.start(TASK_ID, "go");
    await tasks.progress(TASK_ID, { progress: 20, stage: "fetching", message: "before" });

    await postgres.stopServer();
    try {
      await expect(
        tasks.progress(TASK_ID, { progress: 45, stage: "rendering", message: "while down" }),
      ).resolves.toBeUndefined();
      expect(logs.lines.some((line) => line["message"] === "Progress update failed; continuing")).toBe(true);
    } finally {
      await postgres.startServer();
    }
    await tasks.progress(TASK_ID, { progress: 50, stage: "rendering", message: "after restart" });
    expect(await row()).toMatchObject({ status: "running", progress: 50, message: "after restart" });
  });

  it("a required read survives a server restart within the retry window", async () => {
    const tasks = store({ retryDelaysMs: [600, 600] });
    await postgres.stopServer();
    const loading = tasks.load(TASK_ID);
    await sleep(100);
    await postgres.startServer();
    await expect(loading).resolves.toMatchObject({ task_id: TASK_ID });
    expect(statements("select").length).toBeGreaterThanOrEqual(2);
  });

  it("a server down at the final update: 3 attempts (1 s, 2 s apart), then a retryable DATABASE_ERROR", async () => {
    const logs = captureLogs();
    const tasks = store({ logger: logs.logger });
    await tasks.start(TASK_ID, "go");
    await postgres.stopServer();
    let elapsed: number;
    let error: JobError;
    try {
      const t0 = performance.now();
      error = await rejection(tasks.complete(TASK_ID, RESULT));
      elapsed = performance.now() - t0;
    } finally {
      await postgres.startServer();
    }
    console.info(`final update with the server down: ${Math.round(elapsed)} ms until DATABASE_ERROR`);
    expect(error.code).toBe("DATABASE_ERROR");
    expect(error.retryable).toBe(true);
    expect(error.message).toContain("after 3 attempts");
    expect(querySpy.mock.calls.filter((call) => String(call[0]).includes("'completed'"))).toHaveLength(3);
    expect(logs.lines.filter((line) => String(line["message"]).includes("retrying"))).toHaveLength(2);
    expect(elapsed).toBeGreaterThanOrEqual(2900);
    expect(elapsed).toBeLessThan(10_000);
    expect(await row()).toMatchObject({ status: "started" });
  });
});
