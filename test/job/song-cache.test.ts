/**
 * The encoded-song cache with real FFmpeg and local storage: a first job stores its song encode, a
 * second with the same song and timeline copies it (identical audio, no song encode), another timeline
 * (fade) misses, a corrupt entry is rejected and encoded again.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
import { assemblyOutputPieces } from "../../src/media/output-check.js";
import { renderSteps } from "../../src/media/render.js";
import { planAssemblySteps } from "../../src/media/steps.js";
import { type VerifyReport, verifyOutput } from "../../src/media/verify.js";
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
  const report: VerifyReport = {
    decodedFrames: 0,
    decodeRanges: 0,
    packetsChecked: 0,
    copiedFramesMatched: 0,
  };
  const audioCopy = song.audioPacketHashes;
  const pieces = assemblyOutputPieces(items, cached.entries);
  await verifyOutput(file, cached.plan, {
    report,
    pieces,
    ...(audioCopy === undefined ? {} : { audioCopy }),
  });
  await song.publish();
  return {
    file,
    plan: cached.plan,
    audioCopy,
    audioDecoded: report.audioDecoded,
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
    expect(first).toMatchObject({ hit: false, songEncodes: 1, audioDecoded: true });
    expect(songEntries()).toHaveLength(1);
    const second = await job(blueprint());
    expect(second).toMatchObject({ hit: true, songEncodes: 0 });
    expect(audioMd5(second.file)).toBe(audioMd5(first.file));
    expect(songEntries()).toHaveLength(1);
  });

  it("records the stored encode's packets, decoded once; a copy of it is checked by packet, not decoded again", async () => {
    // The first test stored this timeline's encode.
    const sidecars = readdirSync(path.join(root, ".clip-cache/songs")).filter((f) => f.endsWith(".json"));
    const metas = sidecars.map(
      (f) =>
        JSON.parse(readFileSync(path.join(root, ".clip-cache/songs", f), "utf8")) as Record<string, unknown>,
    );
    const meta = metas.find((m) => Array.isArray(m["packetHashes"]));
    expect(meta?.["decoded"]).toBe(true);
    const hashes = meta?.["packetHashes"] as string[];
    expect(hashes.length).toBeGreaterThan(100);
    expect(hashes.every((h) => /^SHA256:[0-9a-f]{64}$/.test(h))).toBe(true);

    const second = await job(blueprint());
    expect({ hit: second.hit, audioDecoded: second.audioDecoded }).toEqual({
      hit: true,
      audioDecoded: false,
    });
    expect(second.audioCopy).toEqual(hashes);

    // A sidecar from before the hashes were recorded: the hit records them, for later jobs.
    const sidecar = sidecars.find((_, i) => metas[i] === meta)!;
    const { decoded: _d, packetHashes: _p, ...older } = meta!;
    writeFileSync(path.join(root, ".clip-cache/songs", sidecar), JSON.stringify(older));
    const upgraded = await job(blueprint());
    expect(upgraded).toMatchObject({ hit: true, audioDecoded: false, audioCopy: hashes });
    const rewritten = JSON.parse(readFileSync(path.join(root, ".clip-cache/songs", sidecar), "utf8"));
    expect(rewritten).toMatchObject({ decoded: true, packetHashes: hashes });

    // One byte of one audio packet changed in the output: the packet check names it.
    const packets = JSON.parse(
      execFileSync(
        "ffprobe",
        [
          "-v",
          "error",
          "-select_streams",
          "a:0",
          "-show_entries",
          "packet=pos,size",
          "-of",
          "json",
          second.file,
        ],
        { encoding: "utf8" },
      ),
    ) as { packets: Array<{ pos: string; size: string }> };
    const target = packets.packets[40]!;
    const bytes = readFileSync(second.file);
    const at = Number(target.pos) + Math.floor(Number(target.size) / 2);
    bytes[at] = bytes[at]! ^ 0xff;
    writeFileSync(second.file, bytes);
    await expect(verifyOutput(second.file, second.plan, { audioCopy: hashes })).rejects.toThrow(
      /audio packet 40 is not the packet it was copied from/,
    );
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
