/**
 * Load: 4 executions at once against the same database and storage root, sharing clips, with the
 * clip cache off and on. No cross-talk between rows, shared files unchanged, each output verified.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { probeVideo } from "../helpers/measure.js";
import {
  blueprint,
  expectNoSecrets,
  expectNoTemp,
  type Harness,
  hardeningCase,
  jobEnv,
  type MoveSpec,
  runCli,
  startHarness,
} from "./harness.js";
import { place, song, tinyClip } from "./media.js";

let h: Harness;
const SHARED = ["clips/red.mp4", "clips/blue.mp4", "clips/green.mp4", "songs/song.m4a"];

function sha(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

function snapshot(): Record<string, string> {
  return Object.fromEntries(SHARED.map((key) => [key, sha(path.join(h.root, key))]));
}

beforeAll(async () => {
  h = await startHarness("hardening-load");
  place(h.root, "songs/song.m4a", song(2));
  for (const colour of ["red", "blue", "green"]) place(h.root, `clips/${colour}.mp4`, tinyClip(colour));
});

afterAll(async () => {
  await h?.stop();
});

/** Execution i: i + 2 moves over the shared clips, so every output has its own frame count. */
function moves(i: number): MoveSpec[] {
  const clips = ["clips/red.mp4", "clips/blue.mp4", "clips/green.mp4"];
  return Array.from({ length: i + 2 }, (_, m) => ({
    clip: clips[(i + m) % 3]!,
    duration: 0.4,
    transition: m === 0 ? "cut" : "crossfade",
  }));
}

async function concurrent(id: string, clipCache: "on" | "off"): Promise<void> {
  const before = snapshot();
  const tasks = await Promise.all([0, 1, 2, 3].map(() => h.newTask()));
  const started = performance.now();
  const runs = await Promise.all(
    tasks.map((taskId, i) =>
      runCli({
        env: jobEnv(h, taskId, blueprint(taskId, moves(i)), { CLIP_CACHE: clipCache }),
        killAfterMs: 180_000,
      }),
    ),
  );
  const wall = Math.round(performance.now() - started);
  for (const [i, run] of runs.entries()) {
    const taskId = tasks[i]!;
    expect(run.code, run.stderr).toBe(0);
    const task = await h.row(taskId);
    expect(task.status).toBe("completed");
    // No cross-talk: each row has its own output and move count; each run logged only its task.
    expect(task.result).toMatchObject({ output_path: `output/${taskId}.mp4`, moves_count: i + 2 });
    const frames = Math.round((i + 2) * 0.4 * 30);
    expect(probeVideo(path.join(h.root, `output/${taskId}.mp4`)).frames).toBe(frames);
    const foreign = run.logs.filter((l) => l["task_id"] !== undefined && l["task_id"] !== taskId);
    expect(foreign).toEqual([]);
  }
  expect(snapshot()).toEqual(before);
  expectNoTemp(h);
  // Nothing but the four outputs (no stray temp names) in the output directory.
  expect(readdirSync(path.join(h.root, "output")).sort()).toEqual(tasks.map((t) => `${t}.mp4`).sort());
  rmSync(path.join(h.root, "output"), { recursive: true, force: true });
  console.info(
    `${id}: 4 executions in ${wall} ms (each ${runs.map((r) => Math.round(r.elapsedMs)).join(", ")} ms)`,
  );
}

describe("4 executions at once, same database and storage, shared clips", () => {
  hardeningCase("load-4-cache-off", () => concurrent("load-4-cache-off", "off"), 240_000);
  hardeningCase(
    "load-4-cache-on",
    async () => {
      // Twice: a cold cache (4 jobs racing to build the same entries), then a warm one.
      await concurrent("load-4-cache-on", "on");
      await concurrent("load-4-cache-on", "on");
    },
    240_000,
  );
});

describe("secrets", () => {
  it("the database password appears in no output and no row of this file", async () => {
    expect(await expectNoSecrets(h)).toBeGreaterThan(8);
  });
});
