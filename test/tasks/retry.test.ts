import { describe, expect, it } from "vitest";
import { MAX_ATTEMPTS, withConnectionRetry } from "../../src/tasks/retry.js";
import { captureLogs } from "../helpers/log-capture.js";

const refused = () =>
  Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });

describe("withConnectionRetry (p-retry)", () => {
  it("tries a connection error 3 times, logging each retry with its wait, then throws the last error", async () => {
    const logs = captureLogs();
    let calls = 0;
    const last = refused();
    const result = withConnectionRetry(
      async () => {
        calls += 1;
        throw calls === MAX_ATTEMPTS ? last : refused();
      },
      { delaysMs: [5, 10, 20], logger: logs.logger, what: "load the task row" },
    );
    await expect(result).rejects.toBe(last);
    expect(calls).toBe(3);
    const retries = logs.lines.filter((line) => String(line["message"]).includes("retrying"));
    expect(retries.map((line) => [line["attempt"], line["retry_in_ms"]])).toEqual([
      [1, 5],
      [2, 10],
    ]);
  });

  it("succeeds on a later attempt", async () => {
    let calls = 0;
    const value = await withConnectionRetry(
      async () => {
        calls += 1;
        if (calls < 2) throw refused();
        return "row";
      },
      { delaysMs: [1], logger: captureLogs().logger, what: "x" },
    );
    expect([value, calls]).toEqual(["row", 2]);
  });

  it("never retries an error the server raised about the SQL", async () => {
    let calls = 0;
    const sqlError = Object.assign(new Error('relation "x" does not exist'), { code: "42P01" });
    await expect(
      withConnectionRetry(
        async () => {
          calls += 1;
          throw sqlError;
        },
        { delaysMs: [1], logger: captureLogs().logger, what: "x" },
      ),
    ).rejects.toBe(sqlError);
    expect(calls).toBe(1);
  });

  it("stops waiting when the job's signal aborts, rejecting with its reason", async () => {
    const controller = new AbortController();
    const reason = new Error("Job terminated: SIGTERM");
    let calls = 0;
    const result = withConnectionRetry(
      async () => {
        calls += 1;
        setTimeout(() => controller.abort(reason), 20);
        throw refused();
      },
      // A one-minute wait: only the abort can end it within the test's timeout.
      { delaysMs: [60_000], logger: captureLogs().logger, what: "x", signal: controller.signal },
    );
    await expect(result).rejects.toBe(reason);
    expect(calls).toBe(1);
  });
});
