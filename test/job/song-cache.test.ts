/**
 * The encoded-song cache with real FFmpeg and local storage: a first job stores its song encode, a
 * second with the same song and timeline copies it (identical audio, no song encode), another timeline
 * (fade) misses, a corrupt entry is rejected and encoded again.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Blueprint } from "../../src/blueprint/types.js";
import { loadConfig } from "../../src/config.js";
import { prepareCachedInputs } from "../../src/job/clip-cache.js";
import { useSongCache } from "../../src/job/song-cache.js";
import { silentLogger } from "../../src/log.js";
import { planAssembly } from "../../src/media/assembly.js";
import { renderSteps } from "../../src/media/render.js";
import { planAssemblySteps } from "../../src/media/steps.js";
import { verifyOutput } from "../../src/media/verify.js";
import { createLocalStorage } from "../../src/storage/local.js";
import { makeBlueprint } from "../helpers/blueprints.js";
import { makeClip, makeSong } from "../helpers/fixtures.js";

let work: string;
let root: string;
const blueprint = (fade = 0): Blueprint =>
  makeBlueprint(
    [
      { video_path: "clips/red.mp4", duration: 2 },
      { video_path: "clips/blue.mp4", duration: 2, transition_type: "crossfade" },
    ],
    { fade_duration: fade },
  );

async function job(bp: Blueprint) {
  const dir = await mkdtemp(path.join(work, "job-"));
  const signal = new AbortController().signal;
  const logger = silentLogger();
  const storage = createLocalStorage({ root });
  const cached = await prepareCachedInputs(bp, storage, dir, {
    config: loadConfig({ LOCAL_STORAGE_ROOT: "." }),
    logger,
    signal,
  });
  const file = path.join(dir, "out.mp4");
  const renderDir = path.join(dir, "render");
  const items = planAssembly(cached.plan, cached.entries);
  const planned = planAssemblySteps(cached.plan, items, {
    entries: cached.entries,
    audio: cached.audio,
    workDir: renderDir,
    output: file,
  });
  const song = await useSongCache(cached.plan, planned, storage, {
    prefix: ".clip-cache",
    workDir: dir,
    logger,
    signal,
  });
  await renderSteps(cached.plan, song.steps, { workDir: renderDir, output: file, signal, logger });
  await verifyOutput(file, cached.plan, {});
  await song.publish();
  return {
    file,
    hit: song.hit,
    songEncodes: song.steps.pieces.filter((p) => p.kind === "audio").length,
    leftInRender: readdirSync(renderDir),
  };
}

/** MD5 of the audio stream's packets. */
function audioMd5(file: string): string {
  return execFileSync(
    "ffmpeg",
    ["-hide_banner", "-v", "error", "-i", file, "-map", "0:a", "-c", "copy", "-f", "md5", "-"],
    { encoding: "utf8" },
  ).trim();
}

const songEntries = () =>
  readdirSync(path.join(root, ".clip-cache/songs")).filter((f) => !f.endsWith(".json"));

beforeAll(() => {
  work = mkdtempSync(path.join(os.tmpdir(), "song-cache-"));
  root = path.join(work, "root");
  makeClip(path.join(root, "clips/red.mp4"), "red", 3);
  makeClip(path.join(root, "clips/blue.mp4"), "blue", 3);
  makeSong(path.join(root, "songs/song.m4a"), 6);
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe("song cache", () => {
  it("stores the first job's song encode; a second job with the same song and timeline copies it", async () => {
    const first = await job(blueprint());
    expect(first).toMatchObject({ hit: false, songEncodes: 1 });
    expect(songEntries()).toHaveLength(1);
    const second = await job(blueprint());
    expect(second).toMatchObject({ hit: true, songEncodes: 0 });
    expect(audioMd5(second.file)).toBe(audioMd5(first.file));
    expect(songEntries()).toHaveLength(1);
  });

  it("misses for another timeline (a fade); rejects a corrupt entry and encodes again", async () => {
    const faded = await job(blueprint(1));
    expect(faded).toMatchObject({ hit: false, songEncodes: 1 });
    expect(songEntries()).toHaveLength(2);
    for (const name of songEntries()) writeFileSync(path.join(root, ".clip-cache/songs", name), "garbage");
    const again = await job(blueprint());
    expect(again).toMatchObject({ hit: false, songEncodes: 1 });
    // Stored again, whole.
    const next = await job(blueprint());
    expect(next.hit).toBe(true);
  });
});
