import pRetry from "p-retry";
import type { Logger } from "../log.js";

/** SQLSTATEs outside class 08 that still mean "the server went away": admin/crash shutdown, cannot connect now. */
const RETRYABLE_SQLSTATES: ReadonlySet<string> = new Set(["57P01", "57P02", "57P03"]);

/** Socket and DNS errno codes for a server that is unreachable for now. */
const RETRYABLE_ERRNO_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * True for errors that say the connection failed, never for errors the server raised about the SQL
 * (those would fail the same way again). Looks through `AggregateError.errors` (Node's happy-eyeballs
 * connect) and `cause`.
 */
export function isConnectionError(raw: unknown, depth = 0): boolean {
  if (raw === null || typeof raw !== "object" || depth > 3) return false;
  const err = raw as { code?: unknown; message?: unknown; errors?: unknown; cause?: unknown };
  if (typeof err.code === "string") {
    if (/^08[0-9A-Z]{3}$/.test(err.code) || RETRYABLE_SQLSTATES.has(err.code)) return true;
    if (RETRYABLE_ERRNO_CODES.has(err.code)) return true;
  }
  // pg's own messages when the socket closes under it (no code set).
  if (typeof err.message === "string" && err.message.startsWith("Connection terminated")) return true;
  if (Array.isArray(err.errors) && err.errors.some((inner) => isConnectionError(inner, depth + 1)))
    return true;
  return isConnectionError(err.cause, depth + 1);
}

/** How many times a required statement is tried in all (SPEC §5: 3 attempts). */
export const MAX_ATTEMPTS = 3;

export interface ConnectionRetryOptions {
  /**
   * The waits of an exponential backoff: the first wait is `delaysMs[0]`, each next one grows by
   * `delaysMs[1] / delaysMs[0]`, capped at the largest entry (SPEC §5: 1 s, 2 s, 4 s).
   */
  delaysMs: readonly number[];
  logger: Logger;
  what: string;
  /** Aborts a wait between attempts (and any later attempt): the job's SIGTERM/SIGINT. */
  signal?: AbortSignal;
}

/**
 * Runs `operation` up to MAX_ATTEMPTS times (p-retry), waiting between attempts, but only while the
 * failure is a connection error; any other error is thrown at once. The final error is thrown as is:
 * the caller decides what it means. An abort of `signal` rejects with the signal's reason.
 */
export function withConnectionRetry<T>(
  operation: () => Promise<T>,
  options: ConnectionRetryOptions,
): Promise<T> {
  const first = Math.max(0, options.delaysMs[0] ?? 1000);
  const second = options.delaysMs[1] ?? first;
  const factor = first > 0 && second > 0 ? second / first : 1;
  const maxTimeout = Math.max(first, ...options.delaysMs);
  return pRetry(operation, {
    retries: MAX_ATTEMPTS - 1,
    minTimeout: first,
    factor,
    maxTimeout,
    randomize: false,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    shouldRetry: ({ error }) => isConnectionError(error),
    onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
      if (retriesLeft === 0 || !isConnectionError(error)) return;
      const delay = Math.min(maxTimeout, Math.round(first * factor ** (attemptNumber - 1)));
      options.logger.warn(
        { err: error, attempt: attemptNumber, max_attempts: MAX_ATTEMPTS, retry_in_ms: delay },
        `Database unavailable (${options.what}); retrying`,
      );
    },
  });
}
