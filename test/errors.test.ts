import { describe, expect, it } from "vitest";
import { coerceError, errorLogFields, JobError } from "../src/errors.js";

describe("errorLogFields", () => {
  it("gives an internal error its stack as stack_trace (Cloud Logging error reporting)", () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'width')");
    const fields = errorLogFields(coerceError(bug), bug);
    expect(fields.code).toBe("INTERNAL");
    expect(fields.stack_trace).toBe(bug.stack);
    expect(fields.stack_trace).toMatch(/^TypeError: Cannot read properties[\s\S]*\n\s+at /);
  });

  it("leaves the stack out for expected failures (bad input, storage, FFmpeg)", () => {
    const error = new JobError("Media file not found: clips/a.mp4", { code: "STORAGE_NOT_FOUND" });
    expect(errorLogFields(error, error)).toEqual({ code: "STORAGE_NOT_FOUND" });
  });
});
