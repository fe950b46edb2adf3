/**
 * Re-encoded pieces of a clip-cache assembly batched several per FFmpeg run (one encoder, a keyframe
 * forced at each piece, the segment muxer cutting one file per piece), with real FFmpeg: the output
 * passes the packet-level check (exact frames, a keyframe at every piece start, copied frames equal
 * to the entries') and shows the same frames as one run per piece, whatever the batch size.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { type CachedInputs, prepareCachedInputs } from "../../src/job/clip-cache.js";
import { silentLogger } from "../../src/log.js";
import { planAssembly } from "../../src/media/assembly.js";
import { assemblyOutputPieces } from "../../src/media/output-check.js";
import { renderSteps } from "../../src/media/render.js";
import { planAssemblySteps } from "../../src/media/steps.js";
import { verifyOutput } from "../../src/media/verify.js";
import { createLocalStorage } from "../../src/storage/local.js";
import { makeBlueprint } from "../helpers/blueprints.js";
import { ffmpeg, makeSong } from "../helpers/fixtures.js";
import { probeVideo, ssims } from "../helpers/measure.js";

let work: string;
let cached: CachedInputs;
const signal = new AbortController().signal;
const logger = silentLogger();

// Moving pictures (a frame shifted by one would show), every kind of re-encoded piece: an opening,
// cut-ins (trims off the entries' keyframes), windows of three types and a hold past a clip's end.
const blueprint = () =>
  makeBlueprint(
    [
      { video_path: "clips/a.mp4", duration: 1.5, transition_type: "fade_black" },
      { video_path: "clips/b.mp4", duration: 1.2, transition_type: "crossfade", trim_start: 0.37 },
      { video_path: "clips/c.mp4", duration: 1.4, transition_type: "wipe_left", trim_start: 0.2 },
      { video_path: "clips/a.mp4", duration: 1.3, transition_type: "fade_black", trim_start: 0.9 },
      { video_path: "clips/b.mp4", duration: 2.5, transition_type: "crossfade", trim_start: 0.5 },
    ],
    { crf: 12, transition_duration: 0.4 },
  );

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "batched-"));
  const root = path.join(work, "root");
  mkdirSync(path.join(root, "clips"), { recursive: true });
  mkdirSync(path.join(root, "songs"), { recursive: true });
  for (const [name, hue] of [
    ["a", 0],
    ["b", 120],
    ["c", 240],
  ] as const) {
    const file = path.join(root, "clips", `${name}.mp4`);
    ffmpeg(["-f", "lavfi", "-i", `testsrc2=s=320x240:r=30:d=2.2,hue=h=${hue}`, "-pix_fmt", "yuv420p", file]);
  }
  makeSong(path.join(root, "songs", "song.m4a"), 10);
  cached = await prepareCachedInputs(blueprint(), createLocalStorage({ root }), path.join(work, "prep"), {
    config: loadConfig({ LOCAL_STORAGE_ROOT: "." }),
    logger,
    signal,
  });
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Renders the assembly with `piecesPerRun` pieces per FFmpeg run and checks it packet by packet. */
async function renderWith(piecesPerRun: number): Promise<{ file: string; runs: number }> {
  const dir = path.join(work, `per-run-${piecesPerRun}`);
  const workDir = path.join(dir, "render");
  const file = path.join(dir, "out.mp4");
  const items = planAssembly(cached.plan, cached.entries);
  const steps = planAssemblySteps(
    cached.plan,
    items,
    { entries: cached.entries, audio: cached.audio, workDir, output: file },
    { piecesPerRun },
  );
  await renderSteps(cached.plan, steps, { workDir, output: file, signal, logger, concurrency: 2 });
  await verifyOutput(file, cached.plan, { pieces: assemblyOutputPieces(items, cached.entries), signal });
  expect(readdirSync(workDir)).toEqual([]);
  return { file, runs: steps.pieces.filter((step) => step.kind === "piece").length };
}

describe("batched re-encoded pieces", () => {
  it("match one run per piece frame for frame, with fewer FFmpeg runs", async () => {
    const encoded = planAssembly(cached.plan, cached.entries).filter((item) => item.kind === "encode");
    expect(encoded.length).toBeGreaterThanOrEqual(8);
    const single = await renderWith(1);
    expect(single.runs).toBe(encoded.length);
    for (const perRun of [3, 4]) {
      const batched = await renderWith(perRun);
      expect(batched.runs).toBe(Math.ceil(encoded.length / perRun));
      expect(probeVideo(batched.file).frames).toBe(cached.plan.totalFrames);
      const scores = ssims(single.file, batched.file, { byFrameNumber: true });
      expect(scores).toHaveLength(cached.plan.totalFrames);
      // Two encodes at CRF 12 of the same frames; a frame shifted by one scores far lower on testsrc2.
      expect(Math.min(...scores)).toBeGreaterThan(0.97);
    }
  }, 300_000);
});
