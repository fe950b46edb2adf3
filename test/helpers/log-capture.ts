import { createLogger, type Logger } from "../../src/log.js";

export interface LogLine {
  severity: string;
  message: string;
  [field: string]: unknown;
}

export interface CapturedLogs {
  logger: Logger;
  /** Every line, parsed, in order. */
  lines: LogLine[];
  /** Every line as written (for "the password never appears" checks). */
  text(): string;
}

/** A real JSON logger (with the job's redaction) whose lines land in memory for assertions. */
export function captureLogs(level: "trace" | "debug" | "info" = "debug"): CapturedLogs {
  const raw: string[] = [];
  const lines: LogLine[] = [];
  const logger = createLogger({
    level,
    format: "json",
    destination: {
      write(chunk: string) {
        raw.push(chunk);
        for (const line of chunk.split("\n")) {
          if (line.trim() !== "") lines.push(JSON.parse(line) as LogLine);
        }
      },
    },
  });
  return { logger, lines, text: () => raw.join("") };
}
