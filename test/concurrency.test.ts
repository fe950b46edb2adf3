/** The one bounded, fail-fast concurrency helper. */
import { describe, expect, it } from "vitest";
import { forEachBounded } from "../src/concurrency.js";

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("forEachBounded", () => {
  it("keeps at most `concurrency` tasks running and returns results in item order", async () => {
    let running = 0;
    let peak = 0;
    const results = await forEachBounded([3, 1, 2, 5, 4], 2, new AbortController().signal, async (n) => {
      running += 1;
      peak = Math.max(peak, running);
      for (let i = 0; i < n; i++) await tick();
      running -= 1;
      return n * 10;
    });
    expect(results).toEqual([30, 10, 20, 50, 40]);
    expect(peak).toBe(2);
  });

  it("on the first failure: queued items never start, running ones are aborted and awaited, the first error is thrown", async () => {
    const started: number[] = [];
    const settled: number[] = [];
    const failure = new Error("piece 1 failed");
    const run = forEachBounded([0, 1, 2, 3], 2, new AbortController().signal, async (n, signal) => {
      started.push(n);
      try {
        if (n === 1) {
          await tick();
          throw failure;
        }
        await new Promise((_, reject) =>
          signal.addEventListener("abort", () => reject(new Error("aborted"))),
        );
      } finally {
        settled.push(n);
      }
    });
    await expect(run).rejects.toBe(failure);
    expect(started).toEqual([0, 1]);
    expect(settled.sort()).toEqual([0, 1]);
  });

  it("an abort of the caller's signal stops the work and throws its reason once everything settled", async () => {
    const controller = new AbortController();
    const reason = new Error("terminated");
    const settled: number[] = [];
    const run = forEachBounded([0, 1, 2], 1, controller.signal, async (n, signal) => {
      await new Promise((resolve) => signal.addEventListener("abort", resolve));
      settled.push(n);
    });
    await tick();
    controller.abort(reason);
    await expect(run).rejects.toBe(reason);
    expect(settled).toEqual([0]);
  });

  it("refuses a concurrency below 1", async () => {
    await expect(forEachBounded([1], 0, new AbortController().signal, async () => 1)).rejects.toThrow(
      /concurrency must be an integer ≥ 1/,
    );
  });
});
