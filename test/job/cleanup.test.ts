/** The job's last-in-first-out cleanup stack. */
import { describe, expect, it } from "vitest";
import { withCleanup } from "../../src/job/cleanup.js";

describe("withCleanup", () => {
  it("runs every release in reverse order after the body, and returns the body's value", async () => {
    const order: string[] = [];
    const value = await withCleanup(async (cleanup) => {
      cleanup.defer(() => void order.push("database"));
      cleanup.defer(async () => void order.push("workspace"));
      order.push("body");
      return 42;
    });
    expect(value).toBe(42);
    expect(order).toEqual(["body", "workspace", "database"]);
  });

  it("runs every release even after the body and a release fail; the body's error wins", async () => {
    const order: string[] = [];
    const bodyError = new Error("render failed");
    const run = withCleanup(async (cleanup) => {
      cleanup.defer(() => void order.push("database"));
      cleanup.defer(() => {
        throw new Error("release failed");
      });
      cleanup.defer(() => void order.push("workspace"));
      throw bodyError;
    });
    await expect(run).rejects.toBe(bodyError);
    expect(order).toEqual(["workspace", "database"]);
  });

  it("rethrows the first release error (in release order) when the body succeeded", async () => {
    const order: string[] = [];
    const run = withCleanup(async (cleanup) => {
      cleanup.defer(() => {
        order.push("first registered");
        throw new Error("second");
      });
      cleanup.defer(() => {
        order.push("last registered");
        throw new Error("first");
      });
      return "done";
    });
    await expect(run).rejects.toThrow("first");
    expect(order).toEqual(["last registered", "first registered"]);
  });
});
