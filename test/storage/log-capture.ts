import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../src/log.js";

export interface LogLine {
  severity: string;
  message: string;
  [field: string]: unknown;
}

/** A real JSON logger whose lines are kept in memory for assertions. */
export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.trim() !== "") lines.push(JSON.parse(line) as LogLine);
      }
      done();
    },
  });
  return { logger: createLogger({ level: "debug", format: "json", destination }), lines };
}
