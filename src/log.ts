import pino, { type Logger } from "pino";
import pinoPretty from "pino-pretty";
import type { LogLevel } from "./config.js";

export type { Logger };

/** Cloud Logging's severity names for pino's levels. */
const SEVERITY: Record<string, string> = {
  trace: "DEBUG",
  debug: "DEBUG",
  info: "INFO",
  warn: "WARNING",
  error: "ERROR",
  fatal: "CRITICAL",
};

/** Secrets never reach a log line, however they are nested. */
const REDACT = [
  "password",
  "DB_PASSWORD",
  "*.password",
  "*.DB_PASSWORD",
  "db.password",
  "config.db.password",
  "credentials",
  "*.credentials",
  "private_key",
  "*.private_key",
];

export interface LoggerOptions {
  level: LogLevel;
  format: "json" | "pretty";
  /** Where JSON lines go (default stdout). Tests pass a stream to capture them. */
  destination?: pino.DestinationStream;
  /** Logs to stderr instead of stdout (`--check`/`--dry-run`: stdout holds only the requested output). */
  stderr?: boolean;
  /**
   * Pretty mode only: formatted lines are written here, synchronously in this thread, instead of by a
   * transport thread to stderr; the terminal's progress bar passes a stream that clears and redraws it.
   */
  prettyStream?: NodeJS.WritableStream;
}

const PRETTY = {
  colorize: true,
  singleLine: true,
  translateTime: "SYS:HH:MM:ss",
  ignore: "pid,hostname",
};

/**
 * pino with Cloud Logging's field names (`severity`, `message`, `time` as ISO) in JSON mode,
 * pino-pretty on a terminal.
 */
export function createLogger(options: LoggerOptions): Logger {
  const base: pino.LoggerOptions = {
    level: options.level,
    redact: { paths: REDACT, censor: "[redacted]" },
    base: undefined,
  };
  if (options.format === "pretty" && options.destination === undefined) {
    if (options.prettyStream !== undefined) {
      return pino(base, pinoPretty({ ...PRETTY, sync: true, destination: options.prettyStream }));
    }
    return pino({ ...base, transport: { target: "pino-pretty", options: { ...PRETTY, destination: 2 } } });
  }
  return pino(
    {
      ...base,
      messageKey: "message",
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ severity: SEVERITY[label] ?? "DEFAULT" }),
      },
    },
    options.destination ?? pino.destination({ fd: options.stderr ? 2 : 1, sync: true }),
  );
}

/** A logger that writes nothing, for tests and pure callers. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
