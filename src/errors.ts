/** The stages of a job, in order (SPEC §5). A failure records the stage it happened in. */
export const STAGES = [
  "validation",
  "assembling",
  "fetching",
  "rendering",
  "uploading",
  "cleanup",
  "completed",
] as const;
export type Stage = (typeof STAGES)[number];

/** Stable machine-readable failure codes, stored in `result.code` of a failed task row. */
export type ErrorCode =
  | "INVALID_BLUEPRINT"
  | "INVALID_CONFIG"
  | "TASK_NOT_FOUND"
  | "TASK_FORBIDDEN"
  | "STORAGE_NOT_FOUND"
  | "STORAGE_DENIED"
  | "STORAGE_UNAVAILABLE"
  | "STORAGE_ERROR"
  | "MEDIA_INVALID"
  | "FFMPEG_FAILED"
  | "FFMPEG_TIMEOUT"
  | "VERIFY_FAILED"
  | "DATABASE_ERROR"
  | "TERMINATED"
  | "INTERNAL";

/** Codes that no retry can fix: the input itself is wrong. They exit with code 2 (SPEC §6). */
const PERMANENT_INPUT_CODES: ReadonlySet<ErrorCode> = new Set(["INVALID_BLUEPRINT", "INVALID_CONFIG"]);

export interface JobErrorOptions {
  code: ErrorCode;
  /** Whether running the same execution again could succeed (network, database, termination). */
  retryable?: boolean;
  cause?: unknown;
  /** Structured detail for logs (e.g. validation issues). Never secrets, never temp paths. */
  details?: unknown;
}

/**
 * The one error type the job reports. `message` is written to the task row as is, so it must be
 * something a user can act on: storage keys and field paths, never temp paths or stack traces.
 */
export class JobError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: unknown;

  constructor(message: string, options: JobErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "JobError";
    this.code = options.code;
    this.retryable = options.retryable ?? false;
    this.details = options.details;
  }

  get exitCode(): 1 | 2 {
    return isPermanentCode(this.code) ? 2 : 1;
  }
}

/** Whether a failure code means bad input (exit 2): running the same blueprint again cannot succeed. */
export function isPermanentCode(code: unknown): boolean {
  return PERMANENT_INPUT_CODES.has(code as ErrorCode);
}

export function isJobError(value: unknown): value is JobError {
  return value instanceof JobError;
}

/** Turns anything thrown into a JobError; unknown errors become INTERNAL with a generic message. */
export function coerceError(raw: unknown): JobError {
  if (raw instanceof JobError) return raw;
  const message = raw instanceof Error ? raw.message : String(raw);
  return new JobError(`Internal error: ${message}`, { code: "INTERNAL", cause: raw });
}

/**
 * Log fields for a failure: its code, and for an internal error (a bug, not bad input or a failing
 * service) the stack as `stack_trace`, which Cloud Logging's error reporting groups and counts.
 */
export function errorLogFields(error: JobError, raw: unknown): { code: ErrorCode; stack_trace?: string } {
  if (error.code !== "INTERNAL") return { code: error.code };
  const source = raw instanceof Error ? raw : error.cause instanceof Error ? error.cause : error;
  return { code: error.code, ...(source.stack === undefined ? {} : { stack_trace: source.stack }) };
}
