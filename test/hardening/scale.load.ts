/**
 * Scale (`npm run test:load`): the same blueprint shape at 50 and 500 moves of tiny clips. Memory
 * must stay flat and time per move must not grow; the bounds are loose on purpose (shared CI
 * machines), the numbers are printed for docs/RELIABILITY.md.
 */
import { rmSync } from "node:fs";
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
  type Run,
  runCli,
  startHarness,
} from "./harness.js";
import { place, song, tinyClip } from "./media.js";

let h: Harness;

beforeAll(async () => {
  h = await startHarness("hardening-scale");
  place(h.root, "songs/song.m4a", song(2));
  for (const colour of ["red", "blue", "green"]) place(h.root, `clips/${colour}.mp4`, tinyClip(colour));
});

afterAll(async () => {
  await h?.stop();
});

const DURATION = 0.2;

async function scaled(count: number, clipCache: "on" | "off"): Promise<Run> {
  const taskId = await h.newTask();
  const clips = ["clips/red.mp4", "clips/blue.mp4", "clips/green.mp4"];
  const moves = Array.from({ length: count }, (_, m) => ({
    clip: clips[m % 3]!,
    duration: DURATION,
    transition: m % 2 === 0 ? "cut" : "crossfade",
  }));
  const doc = blueprint(taskId, moves, {
    output_config: { output_path: `output/${taskId}.mp4`, frame_rate: 30, transition_duration: 0.1 },
  });
  const run = await runCli({
    env: jobEnv(h, taskId, doc, { CLIP_CACHE: clipCache }),
    sampleRss: true,
    killAfterMs: 900_000,
  });
  expect(run.code, run.stderr.slice(0, 2000)).toBe(0);
  expect((await h.row(taskId)).status).toBe("completed");
  expect(probeVideo(path.join(h.root, `output/${taskId}.mp4`)).frames).toBe(
    Math.round(count * DURATION * 30),
  );
  expectNoTemp(h);
  rmSync(path.join(h.root, "output"), { recursive: true, force: true });
  return run;
}

async function flatAndLinear(clipCache: "on" | "off"): Promise<void> {
  const small = await scaled(50, clipCache);
  const large = await scaled(500, clipCache);
  const mib = (bytes = 0) => Math.round((bytes / 1048576) * 10) / 10;
  const perMove = (run: Run, n: number) => Math.round(run.elapsedMs / n);
  console.info(
    `scale-500-cache-${clipCache}: 50 moves ${Math.round(small.elapsedMs)} ms (${perMove(small, 50)} ms/move, peak RSS ${mib(small.peakRssBytes)} MiB); 500 moves ${Math.round(large.elapsedMs)} ms (${perMove(large, 500)} ms/move, peak RSS ${mib(large.peakRssBytes)} MiB)`,
  );
  expect(large.peakRssBytes!).toBeLessThan(1.5 * small.peakRssBytes!);
  // Linear with slack: the per-move time at 500 moves is at most 3× the one at 50.
  expect(large.elapsedMs / 500).toBeLessThan((3 * small.elapsedMs) / 50);
}

describe("500 moves: memory flat, time linear", () => {
  hardeningCase("scale-500-cache-off", () => flatAndLinear("off"), 1_800_000);
  hardeningCase("scale-500-cache-on", () => flatAndLinear("on"), 1_800_000);
});

describe("secrets", () => {
  it("the database password appears in no output and no row of this file", async () => {
    expect(await expectNoSecrets(h)).toBeGreaterThan(3);
  });
});
