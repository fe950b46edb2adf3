import { createLogger, type Logger } from "../../src/log.js";

export interface CapturedLogs {
  logger: Logger;
  lines: Record<string, unknown>[];
  /** Every line as written (for "the password never appears" checks). */
  text(): string;
}

/** A JSON logger (with the job's redaction) whose lines land in memory. */
export function captureLogs(level: "trace" | "debug" | "info" = "debug"): CapturedLogs {
  const raw: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level,
    format: "json",
    destination: {
      write(chunk: string) {
        raw.push(chunk);
        lines.push(JSON.parse(chunk) as Record<string, unknown>);
      },
    },
  });
  return { logger, lines, text: () => raw.join("") };
}
