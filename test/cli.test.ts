import { describe, expect, it } from "vitest";
import { parseCli } from "../src/cli.js";
import { progressWithin, STAGE_PROGRESS } from "../src/job/stages.js";

describe("parseCli", () => {
  it("reads the documented flags", () => {
    expect(parseCli(["--blueprint", "b.json", "--check"])).toEqual({
      blueprintFile: "b.json",
      check: true,
      dryRun: false,
      json: false,
      help: false,
      version: false,
    });
    expect(parseCli([]).check).toBe(false);
    expect(parseCli(["--dry-run"]).dryRun).toBe(true);
    expect(parseCli(["-h"]).help).toBe(true);
    expect(parseCli(["--version"]).version).toBe(true);
    expect(parseCli(["--check", "--json"]).json).toBe(true);
    expect(parseCli(["--dry-run", "--json"]).json).toBe(true);
  });

  it("rejects unknown flags and contradictory modes", () => {
    expect(() => parseCli(["--force"])).toThrow(/force/);
    expect(() => parseCli(["--check", "--dry-run"])).toThrow(/cannot be combined/);
    expect(() => parseCli(["stray"])).toThrow();
    expect(() => parseCli(["--json"])).toThrow(/--check or --dry-run/);
  });
});

describe("stage progress", () => {
  it("moves forward through the stages of SPEC §5", () => {
    const values = Object.values(STAGE_PROGRESS);
    expect(values).toEqual([5, 10, 20, 40, 85, 95, 100]);
  });

  it("maps render progress onto 40–85 and clamps nonsense", () => {
    expect(progressWithin("rendering", 0)).toBe(40);
    expect(progressWithin("rendering", 0.5)).toBe(62);
    expect(progressWithin("rendering", 1)).toBe(85);
    expect(progressWithin("rendering", 7)).toBe(85);
    expect(progressWithin("rendering", Number.NaN)).toBe(40);
    expect(progressWithin("fetching", 1)).toBe(40);
  });
});
