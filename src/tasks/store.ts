import type pg from "pg";
import { type ErrorCode, isPermanentCode, JobError } from "../errors.js";
import type { Logger } from "../log.js";
import { isConnectionError, MAX_ATTEMPTS, withConnectionRetry } from "./retry.js";

/** One row of `choreography_tasks` (sql/choreography_tasks.sql), column names kept. */
export interface TaskRow {
  task_id: string;
  user_id: number;
  status: string;
  progress: number;
  stage: string;
  message: string;
  result: Record<string, unknown> | null;
  error: string | null;
  created_at: Date;
  updated_at: Date;
}

/** `result` of a completed task (SPEC §5); `num_moves` repeats `moves_count` for the frontend. */
export interface TaskResult {
  video_url: string;
  output_path: string;
  moves_count: number;
  num_moves: number;
  file_size: number;
  duration: number;
  /** Length of the rendered timeline in seconds (the API's collection save reads it). */
  total_duration: number;
  width: number;
  height: number;
  fps: number;
  video_codec: string;
  audio_codec: string;
  render_seconds: number;
  warnings: string[];
}

export interface ProgressUpdate {
  progress: number;
  stage: string;
  message: string;
}

export interface TaskFailure {
  stage: string;
  /** A message a user can act on; stored as `error` and `result.error`. */
  error: string;
  code: ErrorCode | string;
  retryable: boolean;
  /** SHA-256 of the blueprint text, so a retried attempt can recognise the same permanent failure. */
  blueprint_sha256?: string;
}

export interface TaskStoreOptions {
  logger: Logger;
  /** USER_ID: when set, only a row owned by this user is read as ours or written. */
  userId?: number;
  /** At most one progress write per this many ms (default 2000). */
  throttleMs?: number;
  /** Waits between attempts of a required statement on connection errors (default 1 s, 2 s, 4 s). */
  retryDelaysMs?: number[];
  /**
   * The job's abort signal: a SIGTERM stops the retries of the statements before the work (ensure,
   * load, start). The final writes (complete, fail) record the outcome and are never cut short by it.
   */
  signal?: AbortSignal;
}

export interface TaskStore {
  /**
   * Inserts the row as 'pending' unless it exists (embedded database, or CREATE_MISSING_TASK=on);
   * true when it inserted one.
   */
  ensure(taskId: string, userId: number): Promise<boolean>;
  /** Reads the row; TASK_NOT_FOUND if missing, TASK_FORBIDDEN if owned by another user. Writes nothing. */
  load(taskId: string): Promise<TaskRow>;
  start(taskId: string, message: string): Promise<void>;
  /** Throttled, monotonic, best effort: never rejects. */
  progress(taskId: string, update: ProgressUpdate): Promise<void>;
  /** Writes a throttled progress value now (never rejects). */
  flush(): Promise<void>;
  complete(taskId: string, result: TaskResult): Promise<void>;
  /** Records a failure, except on a `completed` row, which a later failure never changes (logged). */
  fail(taskId: string, failure: TaskFailure): Promise<void>;
  /**
   * Claims the task for this execution: a session advisory lock on a connection held until
   * `release` (or until the connection dies, e.g. the process is killed). False when another
   * execution holds it: this one must leave the row alone.
   */
  claim(taskId: string): Promise<boolean>;
  /** Releases the claim (never rejects). */
  release(): Promise<void>;
}

/**
 * A retried Cloud Run attempt (`CLOUD_RUN_TASK_ATTEMPT` > 0) of a blueprint whose permanent failure (exit 2:
 * invalid blueprint or configuration) the row already records cannot succeed: it stops without a write (SPEC §6).
 */
export function isRecordedPermanentFailure(row: TaskRow, blueprintSha256: string): boolean {
  const result = row.result;
  return (
    row.status === "failed" &&
    result !== null &&
    isPermanentCode(result["code"]) &&
    result["blueprint_sha256"] === blueprintSha256
  );
}

/** A retried execution of the same task with the same output has nothing to do (SPEC §5). */
export function isAlreadyCompleted(row: TaskRow, outputPath: string): boolean {
  return row.status === "completed" && row.result !== null && row.result["output_path"] === outputPath;
}

// Every statement is constant; `$2` is USER_ID or null (null: any owner).
const OWNER = "task_id = $1::varchar and ($2::bigint is null or user_id = $2::bigint)";

const SELECT_TASK = `select task_id, user_id::text as user_id, status, progress, stage, message, result, error,
  created_at, updated_at
from choreography_tasks
where task_id = $1::varchar`;

// Every NOT NULL column is given: the API's Django table has no database-side defaults.
const INSERT_PENDING = `insert into choreography_tasks
  (task_id, user_id, status, progress, stage, message, created_at, updated_at)
values ($1::varchar, $2::bigint, 'pending', 0, '', '', now(), now())
on conflict (task_id) do nothing`;

const UPDATE_STARTED = `update choreography_tasks
set status = 'started', stage = 'validation', progress = 5, message = $3::text, result = null, error = null,
  updated_at = now()
where ${OWNER}`;

// Never overwrites a finished row, never lowers progress.
const UPDATE_PROGRESS = `update choreography_tasks
set status = 'running', progress = $3::integer, stage = $4::varchar, message = $5::text, updated_at = now()
where ${OWNER} and status in ('started', 'running') and progress <= $3::integer`;

const UPDATE_COMPLETED = `update choreography_tasks
set status = 'completed', progress = 100, stage = 'completed', message = $3::text, result = $4::jsonb,
  error = null, updated_at = now()
where ${OWNER}`;

// A completed row is never changed by a failure (a duplicate or late execution of the same task).
const UPDATE_FAILED = `update choreography_tasks
set status = 'failed', stage = $3::varchar, message = $4::text, error = $4::text, result = $5::jsonb,
  updated_at = now()
where ${OWNER} and status <> 'completed'`;

const SELECT_STATUS = `select status from choreography_tasks where ${OWNER}`;

// One lock per task id, in a key space of its own (64-bit hash of a prefixed id).
const LOCK_KEY = "hashtextextended('choreography_tasks:' || $1::varchar, 0)";
const TRY_LOCK = `select pg_try_advisory_lock(${LOCK_KEY}) as locked`;
const UNLOCK = `select pg_advisory_unlock(${LOCK_KEY})`;

/**
 * Text PostgreSQL can store: a lone UTF-16 surrogate (valid in a JS string, e.g. from a blueprint's
 * `"\ud800"` escape) is rejected inside jsonb and NUL in any text, so both become U+FFFD. Without
 * this, a storage key echoed in an error made the failure impossible to record.
 */
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

export function storableText(text: string): string {
  return text.replace(UNSTORABLE, "\uFFFD");
}

/** JSON for a jsonb parameter, every string made storable. */
export function storableJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    typeof item === "string" ? storableText(item) : item,
  );
}

interface RawTaskRow extends Omit<TaskRow, "user_id"> {
  user_id: string;
}

export function createTaskStore(pool: pg.Pool, options: TaskStoreOptions): TaskStore {
  const { logger } = options;
  const userId = options.userId ?? null;
  const throttleMs = options.throttleMs ?? 2000;
  const delaysMs = options.retryDelaysMs ?? [1000, 2000, 4000];

  /** A required statement: retried on connection errors, every failure a JobError. */
  async function required(
    what: string,
    taskId: string,
    sql: string,
    params: unknown[],
    signal?: AbortSignal,
  ): Promise<pg.QueryResult> {
    try {
      return await withConnectionRetry(() => pool.query(sql, params), {
        delaysMs,
        logger,
        what,
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (err) {
      if (signal?.aborted && err === signal.reason) throw err;
      const connection = isConnectionError(err);
      const reason = err instanceof Error ? err.message : String(err);
      throw new JobError(
        connection
          ? `Database unavailable: could not ${what} for task ${taskId} after ${MAX_ATTEMPTS} attempts (${reason})`
          : `Database error: could not ${what} for task ${taskId} (${reason})`,
        { code: "DATABASE_ERROR", retryable: connection, cause: err },
      );
    }
  }

  /** A required write that must hit exactly our row. */
  async function write(
    what: string,
    taskId: string,
    sql: string,
    params: unknown[],
    signal?: AbortSignal,
  ): Promise<void> {
    const result = await required(what, taskId, sql, params, signal);
    if (result.rowCount === 0) {
      throw new JobError(`Task ${taskId} not found for this user; nothing was updated`, {
        code: "TASK_NOT_FOUND",
      });
    }
  }

  // Progress state for this execution.
  let highest = Number.NEGATIVE_INFINITY;
  let pending: { taskId: string; update: ProgressUpdate } | undefined;
  let inFlight: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let lastWriteAt = Number.NEGATIVE_INFINITY;
  let finished = false;
  let lock: { client: pg.PoolClient; taskId: string } | undefined;

  function clearTimer(): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  }

  /** Starts writing the pending value (single attempt: the next value supersedes a lost one). */
  function writePending(): Promise<void> {
    const item = pending;
    if (item === undefined || finished) return Promise.resolve();
    pending = undefined;
    lastWriteAt = performance.now();
    const { taskId, update } = item;
    const attempt = (async () => {
      try {
        const result = await pool.query(UPDATE_PROGRESS, [
          taskId,
          userId,
          Math.round(update.progress),
          update.stage,
          storableText(update.message),
        ]);
        if (result.rowCount === 0)
          logger.debug({ progress: update.progress }, "Progress not written (row finished)");
      } catch (err) {
        logger.warn(
          { err, progress: update.progress, stage: update.stage },
          "Progress update failed; continuing",
        );
      }
    })();
    const tracked = attempt.finally(() => {
      if (inFlight === tracked) inFlight = undefined;
      if (pending !== undefined) schedule();
    });
    inFlight = tracked;
    return tracked;
  }

  /** Leading edge now if the window is open; otherwise one trailing write at the window's end. */
  function schedule(): Promise<void> {
    if (finished || inFlight !== undefined || timer !== undefined) return Promise.resolve();
    const wait = lastWriteAt + throttleMs - performance.now();
    if (wait <= 0) return writePending();
    timer = setTimeout(() => {
      timer = undefined;
      void writePending();
    }, wait);
    timer.unref();
    return Promise.resolve();
  }

  /** Stops progress for good and waits for a write already on the wire, so it cannot land after us. */
  async function settleProgress(): Promise<void> {
    finished = true;
    clearTimer();
    pending = undefined;
    while (inFlight !== undefined) await inFlight;
  }

  return {
    async ensure(taskId, ownerId) {
      const result = await required(
        "create the task row",
        taskId,
        INSERT_PENDING,
        [taskId, ownerId],
        options.signal,
      );
      return result.rowCount === 1;
    },

    async load(taskId) {
      const result = await required("load the task row", taskId, SELECT_TASK, [taskId], options.signal);
      const raw = result.rows[0] as RawTaskRow | undefined;
      if (raw === undefined) throw new JobError(`Task ${taskId} not found`, { code: "TASK_NOT_FOUND" });
      const row: TaskRow = { ...raw, user_id: Number(raw.user_id) };
      if (userId !== null && row.user_id !== userId) {
        // The owner's id stays out of the message: it is written to logs.
        throw new JobError(
          `Task ${taskId} belongs to another user (USER_ID ${userId}); nothing was changed`,
          {
            code: "TASK_FORBIDDEN",
          },
        );
      }
      return row;
    },

    async start(taskId, message) {
      await write(
        "mark the task started",
        taskId,
        UPDATE_STARTED,
        [taskId, userId, storableText(message)],
        options.signal,
      );
    },

    progress(taskId, update) {
      if (finished || !(update.progress >= highest)) return Promise.resolve();
      highest = update.progress;
      pending = { taskId, update };
      return schedule();
    },

    async flush() {
      for (;;) {
        clearTimer();
        if (inFlight !== undefined) await inFlight;
        else if (pending !== undefined && !finished) await writePending();
        else return;
      }
    },

    async complete(taskId, result) {
      await settleProgress();
      await write("record the result", taskId, UPDATE_COMPLETED, [
        taskId,
        userId,
        "Completed",
        storableJson(result),
      ]);
    },

    async fail(taskId, failure) {
      await settleProgress();
      const { stage, error, code, retryable, blueprint_sha256 } = failure;
      const result = await required("record the failure", taskId, UPDATE_FAILED, [
        taskId,
        userId,
        stage,
        storableText(error),
        storableJson({
          error,
          code,
          stage,
          retryable,
          ...(blueprint_sha256 !== undefined && { blueprint_sha256 }),
        }),
      ]);
      if (result.rowCount !== 0) return;
      const row = await required("read the task status", taskId, SELECT_STATUS, [taskId, userId]);
      if ((row.rows[0] as { status?: string } | undefined)?.status === "completed") {
        logger.warn({ code }, `Task ${taskId} is completed; this execution's failure leaves it unchanged`);
        return;
      }
      throw new JobError(`Task ${taskId} not found for this user; nothing was updated`, {
        code: "TASK_NOT_FOUND",
      });
    },

    async claim(taskId) {
      if (lock !== undefined) return true;
      const client = await withConnectionRetry(() => pool.connect(), {
        delaysMs,
        logger,
        what: "claim the task",
      }).catch((err: unknown) => {
        throw new JobError(
          `Database unavailable: could not claim task ${taskId} (${err instanceof Error ? err.message : String(err)})`,
          { code: "DATABASE_ERROR", retryable: isConnectionError(err), cause: err },
        );
      });
      try {
        const { rows } = await client.query(TRY_LOCK, [taskId]);
        if ((rows[0] as { locked?: boolean } | undefined)?.locked !== true) {
          client.release();
          return false;
        }
      } catch (err) {
        client.release(true);
        throw new JobError(
          `Database error: could not claim task ${taskId} (${err instanceof Error ? err.message : String(err)})`,
          { code: "DATABASE_ERROR", retryable: isConnectionError(err), cause: err },
        );
      }
      lock = { client, taskId };
      return true;
    },

    async release() {
      const held = lock;
      lock = undefined;
      if (held === undefined) return;
      try {
        await held.client.query(UNLOCK, [held.taskId]);
        held.client.release();
      } catch (err) {
        // The session (and its lock) ends with the connection.
        held.client.release(true);
        logger.debug(
          { err: err instanceof Error ? err.message : String(err) },
          "Releasing the task claim failed",
        );
      }
    },
  };
}
