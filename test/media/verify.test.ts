/**
 * Verification by construction with real FFmpeg: a clip-cache assembly is checked packet by packet and
 * decoded only where it was encoded and around its joins; a copied body that is not the entry's bytes,
 * a piece that does not start on a keyframe and a damaged encoded piece are each caught.
 */
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, writeSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { type CachedInputs, prepareCachedInputs } from "../../src/job/clip-cache.js";
import { silentLogger } from "../../src/log.js";
import { planAssembly } from "../../src/media/assembly.js";
import {
  assemblyOutputPieces,
  decodeRanges,
  fromKeyframes,
  type OutputPiece,
  segmentOutputPieces,
} from "../../src/media/output-check.js";
import { renderSteps } from "../../src/media/render.js";
import { planAssemblySteps } from "../../src/media/steps.js";
import { type VerifyReport, verifyOutput } from "../../src/media/verify.js";
import { createLocalStorage } from "../../src/storage/local.js";
import { makeBlueprint } from "../helpers/blueprints.js";
import { makeClip, makeSong } from "../helpers/fixtures.js";
import { cleanup, render } from "./helpers.js";

let work: string;
let root: string;
const blueprint = () =>
  makeBlueprint([
    { video_path: "clips/red.mp4", duration: 3 },
    { video_path: "clips/blue.mp4", duration: 3, transition_type: "crossfade", trim_start: 0.3 },
    { video_path: "clips/green.mp4", duration: 3, transition_type: "fade_black" },
  ]);

interface Assembled {
  cached: CachedInputs;
  file: string;
  pieces: OutputPiece[];
}

async function assemble(): Promise<Assembled> {
  const dir = await mkdtemp(path.join(work, "job-"));
  const signal = new AbortController().signal;
  const cached = await prepareCachedInputs(blueprint(), createLocalStorage({ root }), dir, {
    config: loadConfig({ LOCAL_STORAGE_ROOT: "." }),
    logger: silentLogger(),
    signal,
  });
  const items = planAssembly(cached.plan, cached.entries);
  const pieces = assemblyOutputPieces(items, cached.entries);
  return { cached, file: path.join(dir, "out.mp4"), pieces };
}

async function renderAssembled(a: Assembled): Promise<void> {
  const workDir = path.join(path.dirname(a.file), "render");
  const items = planAssembly(a.cached.plan, a.cached.entries);
  const steps = planAssemblySteps(a.cached.plan, items, {
    entries: a.cached.entries,
    audio: a.cached.audio,
    workDir,
    output: a.file,
  });
  await renderSteps(a.cached.plan, steps, {
    workDir,
    output: a.file,
    signal: new AbortController().signal,
    logger: silentLogger(),
  });
}

interface Packet {
  pos: number;
  size: number;
  keyframe: boolean;
}

/** Video packets of a file in decode order: byte offset, size, keyframe flag. */
function videoPackets(file: string): Packet[] {
  const out = execFileSync(
    "ffprobe",
    ["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pos,size,flags", "-of", "json", file],
    { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  return (JSON.parse(out) as { packets: Array<{ pos: string; size: string; flags: string }> }).packets.map(
    (p) => ({ pos: Number(p.pos), size: Number(p.size), keyframe: p.flags.startsWith("K") }),
  );
}

/** Inverts a run of bytes in the middle of a packet's payload (its length prefix and slice header kept). */
function damage(file: string, packet: Packet, bytes = 64): void {
  const at = packet.pos + Math.floor(packet.size / 2);
  const fd = openSync(file, "r+");
  try {
    const buffer = Buffer.alloc(Math.min(bytes, Math.floor(packet.size / 3)));
    readSync(fd, buffer, 0, buffer.length, at);
    for (let i = 0; i < buffer.length; i++) buffer[i] = buffer[i]! ^ 0xff;
    writeSync(fd, buffer, 0, buffer.length, at);
  } finally {
    closeSync(fd);
  }
}

beforeAll(() => {
  work = mkdtempSync(path.join(os.tmpdir(), "verify-"));
  root = path.join(work, "root");
  makeClip(path.join(root, "clips/red.mp4"), "red", 4);
  makeClip(path.join(root, "clips/blue.mp4"), "blue", 4);
  makeClip(path.join(root, "clips/green.mp4"), "green", 4);
  makeSong(path.join(root, "songs/song.m4a"), 10);
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe("verification by construction", () => {
  let warm: Assembled;

  it("checks every packet of a cache assembly and decodes only its encoded pieces and joins", async () => {
    await assemble(); // cold: fills the cache
    warm = await assemble();
    expect(warm.cached.stats.hits).toBe(3);
    await renderAssembled(warm);
    const plan = warm.cached.plan;
    const copied = warm.pieces.filter((p) => p.copy !== undefined);
    expect(copied.length).toBeGreaterThanOrEqual(2);
    // Entries built by this job were decoded whole: their copies need no decode before a join.
    expect(copied.every((p) => p.copy?.decodeVerified === true)).toBe(true);

    const report: VerifyReport = {
      decodedFrames: 0,
      decodeRanges: 0,
      packetsChecked: 0,
      copiedFramesMatched: 0,
    };
    const verified = await verifyOutput(warm.file, plan, { pieces: warm.pieces, report });
    expect(verified.duration).toBeCloseTo(plan.duration, 2);
    expect(report.copiedFramesMatched).toBe(copied.reduce((sum, p) => sum + p.frames, 0));
    expect(report.decodedFrames).toBeGreaterThan(0);
    expect(report.decodedFrames).toBeLessThan(plan.totalFrames);
    // Every encoded frame is among the decoded ones.
    const encoded = warm.pieces.filter((p) => p.encoded).reduce((sum, p) => sum + p.frames, 0);
    expect(report.decodedFrames).toBeGreaterThanOrEqual(encoded);
    // The same output from entries not known to decode: the frames before each join are decoded too.
    const unverified = warm.pieces.map((p) =>
      p.copy === undefined ? p : { ...p, copy: { ...p.copy, decodeVerified: false } },
    );
    const older: VerifyReport = {
      decodedFrames: 0,
      decodeRanges: 0,
      packetsChecked: 0,
      copiedFramesMatched: 0,
    };
    await verifyOutput(warm.file, plan, { pieces: unverified, report: older });
    expect(older.decodedFrames).toBeGreaterThan(report.decodedFrames);

    const full: VerifyReport = {
      decodedFrames: 0,
      decodeRanges: 0,
      packetsChecked: 0,
      copiedFramesMatched: 0,
    };
    await verifyOutput(warm.file, plan, { pieces: warm.pieces, decode: "full", report: full });
    expect(full.decodedFrames).toBe(plan.totalFrames);
    // No list file left beside the output.
    expect(readdirSync(path.dirname(warm.file)).filter((f) => f.includes("ffconcat"))).toEqual([]);
  });

  it("catches a copied body whose bytes are not its verified entry's (entry damaged after the lookup)", async () => {
    const a = await assemble();
    const copy = a.pieces.find((p) => p.copy !== undefined && p.frames > 10)!.copy!;
    const entry = a.cached.entries.get(copy.key)!;
    // Local entries are read in place: damage one the render will copy, after it was verified.
    damage(entry.file, videoPackets(entry.file)[copy.fromFrame + 5]!);
    try {
      await renderAssembled(a);
      await expect(verifyOutput(a.file, a.cached.plan, { pieces: a.pieces })).rejects.toMatchObject({
        code: "VERIFY_FAILED",
        message: expect.stringContaining(`is not the packet it was copied from (frame ${copy.fromFrame + 5}`),
      });
    } finally {
      // The next tests want a clean cache: drop the damaged entry (the lookup would rebuild it anyway).
      rmSync(path.join(root, ".clip-cache"), { recursive: true, force: true });
    }
  });

  it("catches a copied body damaged in the output, where nothing is decoded, by its packet hashes", async () => {
    const plan = warm.cached.plan;
    const damaged = path.join(path.dirname(warm.file), "damaged-copy.mp4");
    execFileSync("cp", [warm.file, damaged]);
    // The middle of the longest copy: neither a join's margin nor the video's ends.
    const copy = warm.pieces
      .filter((p) => p.copy !== undefined)
      .reduce((a, b) => (b.frames > a.frames ? b : a));
    const frame = copy.startFrame + Math.floor(copy.frames / 2);
    const ranges = fromKeyframes(
      decodeRanges(warm.pieces, plan.totalFrames),
      videoPackets(warm.file).map((p) => p.keyframe),
    );
    expect(ranges.some((r) => frame >= r.from && frame < r.to)).toBe(false);
    damage(damaged, videoPackets(damaged)[frame]!);
    await expect(verifyOutput(damaged, plan, { pieces: warm.pieces })).rejects.toMatchObject({
      code: "VERIFY_FAILED",
      message: expect.stringContaining(`frame ${frame} is not the packet it was copied from`),
    });
  });

  it("catches a piece that does not start on a keyframe", async () => {
    const plan = warm.cached.plan;
    // The same frames and song, re-encoded with one keyframe for the whole video: joins have none.
    const regop = path.join(path.dirname(warm.file), "regop.mp4");
    execFileSync("ffmpeg", [
      "-hide_banner",
      "-v",
      "error",
      "-y",
      "-i",
      warm.file,
      "-map",
      "0:v",
      "-map",
      "0:a",
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      "-bf",
      "0",
      "-g",
      "1000",
      "-sc_threshold",
      "0",
      "-c:a",
      "copy",
      regop,
    ]);
    const segments = segmentOutputPieces(plan);
    await expect(verifyOutput(regop, plan, { pieces: segments })).rejects.toMatchObject({
      code: "VERIFY_FAILED",
      message: expect.stringMatching(
        /start a piece but are not keyframes|starts a piece but is not a keyframe/,
      ),
    });
    // Without the pieces the old checks still pass it: the keyframe check is what catches it.
    await expect(verifyOutput(regop, plan, { decode: "off" })).resolves.toBeDefined();
  });

  it("catches a damaged encoded piece by decoding it (partial decode)", async () => {
    const plan = warm.cached.plan;
    const damaged = path.join(path.dirname(warm.file), "damaged.mp4");
    execFileSync("cp", [warm.file, damaged]);
    const window = warm.pieces.find((p) => p.encoded && p.frames >= 5)!;
    const packets = videoPackets(damaged);
    // A predicted frame inside the window (its keyframe flag comes from the container and the parser).
    damage(damaged, packets[window.startFrame + 3]!, 2048);
    // Its packets are still in order: only decoding finds it.
    await expect(verifyOutput(damaged, plan, { pieces: warm.pieces, decode: "off" })).resolves.toBeDefined();
    await expect(verifyOutput(damaged, plan, { pieces: warm.pieces })).rejects.toMatchObject({
      code: "VERIFY_FAILED",
      message: expect.stringMatching(/decod/),
    });
  });

  it("passes a segment render (B-frames, every piece encoded) checked packet by packet", async () => {
    const files = Object.fromEntries(
      ["clips/red.mp4", "clips/blue.mp4", "clips/green.mp4"].map((key) => [key, path.join(root, key)]),
    );
    const rendered = await render(blueprint(), files, path.join(root, "songs/song.m4a"));
    try {
      const report: VerifyReport = {
        decodedFrames: 0,
        decodeRanges: 0,
        packetsChecked: 0,
        copiedFramesMatched: 0,
      };
      await verifyOutput(rendered.file, rendered.plan, {
        pieces: segmentOutputPieces(rendered.plan),
        report,
      });
      expect(report.decodedFrames).toBe(rendered.plan.totalFrames);
    } finally {
      cleanup(rendered);
    }
  });
});
