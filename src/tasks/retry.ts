import { setTimeout as sleep } from "node:timers/promises";
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

/**
 * Runs `operation` up to MAX_ATTEMPTS times, waiting `delaysMs[i]` (the last entry repeats) after the
 * i-th failure, but only while the failure is a connection error; any other error is thrown at once.
 * The final error is thrown as is: the caller decides what it means.
 */
export async function withConnectionRetry<T>(
  operation: () => Promise<T>,
  options: { delaysMs: readonly number[]; logger: Logger; what: string },
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (err) {
      if (attempt >= MAX_ATTEMPTS || !isConnectionError(err)) throw err;
      const delay = options.delaysMs[Math.min(attempt - 1, options.delaysMs.length - 1)] ?? 1000;
      options.logger.warn(
        { err, attempt, max_attempts: MAX_ATTEMPTS, retry_in_ms: delay },
        `Database unavailable (${options.what}); retrying`,
      );
      await sleep(delay);
    }
  }
}
