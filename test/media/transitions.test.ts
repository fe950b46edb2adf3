/**
 * wipe_left, wipe_right, zoom_in, zoom_out and rotate with real FFmpeg, on both render paths: the
 * segment path (CLIP_CACHE=off) and the clip-cache assembly. Every check runs on both outputs, which
 * must also match each other frame for frame (SSIM ≥ 0.98) and have exactly the planned frames.
 * Measurements are on the luma plane of static generated clips, so positions are exact.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Blueprint } from "../../src/blueprint/types.js";
import { loadConfig } from "../../src/config.js";
import { prepareCachedInputs } from "../../src/job/clip-cache.js";
import { silentLogger } from "../../src/log.js";
import { planAssembly } from "../../src/media/assembly.js";
import type { RenderPlan } from "../../src/media/plan.js";
import { renderSteps } from "../../src/media/render.js";
import { MAX_PIECES_PER_RUN, planAssemblySteps } from "../../src/media/steps.js";
import { verifyOutput } from "../../src/media/verify.js";
import { createLocalStorage } from "../../src/storage/local.js";
import { type MoveInput, makeBlueprint } from "../helpers/blueprints.js";
import { makeSongFixture } from "../helpers/fixtures.js";
import { lumaFrames, ssims } from "../helpers/measure.js";
import { render } from "./helpers.js";

const W = 320;
const H = 240;
/** Luma of the solid clips (BT.601 limited range). */
const LUMA = { red: 81, blue: 41, black: 16 } as const;

/** Static clips: measurements need no tolerance for motion. */
const CLIP_SOURCES: Record<string, string> = {
  red: `color=c=red:s=${W}x${H}:r=30:d=2`,
  blue: `color=c=blue:s=${W}x${H}:r=30:d=2`,
  // White with a centred black box a quarter of each side (80×60): its width measures a zoom.
  target: `color=c=white:s=${W}x${H}:r=30:d=2,drawbox=x=120:y=90:w=80:h=60:c=black:t=fill`,
  // Off-centre marks and no black anywhere: a rotation shows, padding is the only black.
  redMarked: `color=c=red:s=${W}x${H}:r=30:d=2,drawbox=x=40:y=40:w=60:h=40:c=white:t=fill`,
  blueMarked: `color=c=blue:s=${W}x${H}:r=30:d=2,drawbox=x=200:y=150:w=70:h=50:c=yellow:t=fill`,
  // Moving picture: the two render paths must pick the same source frames, not only the same geometry.
  motion: `testsrc2=s=${W}x${H}:r=30:d=2`,
};

let work: string;
let root: string;
const files: Record<string, string> = {};
const cleanups: string[] = [];

beforeAll(() => {
  work = mkdtempSync(path.join(os.tmpdir(), "transitions-"));
  root = path.join(work, "root");
  mkdirSync(path.join(root, "clips"), { recursive: true });
  mkdirSync(path.join(root, "songs"), { recursive: true });
  for (const [name, source] of Object.entries(CLIP_SOURCES)) {
    const file = path.join(root, "clips", `${name}.mp4`);
    execFileSync("ffmpeg", [
      ...["-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source],
      ...["-c:v", "libx264", "-preset", "ultrafast", "-crf", "8", "-pix_fmt", "yuv420p", file],
    ]);
    files[`clips/${name}.mp4`] = file;
  }
  copyFileSync(makeSongFixture("song-10s", 10), path.join(root, "songs", "song.m4a"));
});
afterAll(() => {
  for (const dir of cleanups) rmSync(dir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

interface Outputs {
  plan: RenderPlan;
  /** CLIP_CACHE=off: one FFmpeg run per body and per window, joined by stream copy. */
  segments: string;
  /** The clip-cache assembly: bodies copied from normalised entries, windows re-encoded from them (batched). */
  cached: string;
}

/** Renders a blueprint on both paths; both outputs are verified against the plan. */
async function renderBoth(blueprint: Blueprint): Promise<Outputs> {
  const song = path.join(root, "songs", "song.m4a");
  const segments = await render(blueprint, files, song);
  cleanups.push(segments.dir);

  const dir = await mkdtemp(path.join(work, "cached-"));
  const signal = new AbortController().signal;
  const logger = silentLogger();
  const cached = await prepareCachedInputs(blueprint, createLocalStorage({ root }), dir, {
    config: loadConfig({ LOCAL_STORAGE_ROOT: "." }),
    logger,
    signal,
  });
  const output = path.join(dir, "out.mp4");
  // Re-encoded pieces batched as on one vCPU (media/steps.ts `piecesPerRun`).
  const steps = planAssemblySteps(
    cached.plan,
    planAssembly(cached.plan, cached.entries),
    { entries: cached.entries, audio: cached.audio, workDir: path.join(dir, "render"), output },
    { piecesPerRun: MAX_PIECES_PER_RUN },
  );
  await renderSteps(cached.plan, steps, { workDir: path.join(dir, "render"), output, signal, logger });
  await verifyOutput(output, cached.plan, {});
  return { plan: segments.plan, segments: segments.file, cached: output };
}

function mean(frame: Uint8Array, x: number, y: number, w: number, h: number, width = W): number {
  let sum = 0;
  for (let row = y; row < y + h; row++)
    for (let col = x; col < x + w; col++) sum += frame[row * width + col]!;
  return sum / (w * h);
}

/** Mean absolute luma difference of two frames. */
function difference(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

/** Columns of row `y` closer to `luma` than to `other`. */
function columnsLike(frame: Uint8Array, y: number, luma: number, other: number): number[] {
  const columns: number[] = [];
  for (let x = 0; x < W; x++) {
    const v = frame[y * W + x]!;
    if (Math.abs(v - luma) < Math.abs(v - other)) columns.push(x);
  }
  return columns;
}

/** Length of the dark run through the middle of `line` (threshold halfway between its extremes). */
function centreRun(line: ArrayLike<number>): number {
  const values = Array.from(line);
  const threshold = (Math.min(...values) + Math.max(...values)) / 2;
  let start = Math.floor(values.length / 2);
  let end = start;
  while (start > 0 && values[start - 1]! < threshold) start--;
  while (end < values.length && values[end]! < threshold) end++;
  return end - start;
}

/** Width of the dark box through the frame's centre row. */
const boxWidth = (frame: Uint8Array): number => centreRun(frame.subarray((H / 2) * W, (H / 2 + 1) * W));

/** Height of the dark box through the frame's centre column. */
const boxHeight = (frame: Uint8Array): number =>
  centreRun(Array.from({ length: H }, (_, y) => frame[y * W + W / 2]!));

/** Runs `check` on both outputs; asserts exact frame counts and that the two paths agree. */
function onBothPaths(outputs: Outputs, check: (frames: Uint8Array[], path: string) => void): void {
  const total = outputs.plan.totalFrames;
  for (const [name, file] of [
    ["segments", outputs.segments],
    ["cache", outputs.cached],
  ] as const) {
    const frames = lumaFrames(file, outputs.plan.width, outputs.plan.height);
    expect(frames.length, name).toBe(total);
    check(frames, name);
  }
  const s = ssims(outputs.segments, outputs.cached, { byFrameNumber: true });
  expect(s).toHaveLength(total);
  expect(Math.min(...s)).toBeGreaterThanOrEqual(0.98);
}

const twoMoves = (from: string, to: string, type: MoveInput["transition_type"]): Blueprint =>
  makeBlueprint(
    [
      { video_path: `clips/${from}.mp4`, duration: 1 },
      { video_path: `clips/${to}.mp4`, duration: 1, transition_type: type, trim_start: 0.5 },
    ],
    { crf: 10 },
  );

// Two 1 s moves at 30 fps, default 0.5 s window: window frames 15..29, frame 15 + k has progress (k+1)/16.
const WINDOW_START = 15;

describe("wipes", () => {
  it("wipe_left: the incoming move is revealed on the right by an edge travelling right to left", async () => {
    const out = await renderBoth(twoMoves("red", "blue", "wipe_left"));
    onBothPaths(out, (frames, name) => {
      expect(mean(frames[WINDOW_START - 1]!, 0, 0, W, H), name).toBeCloseTo(LUMA.red, -1);
      expect(mean(frames[30]!, 0, 0, W, H), name).toBeCloseTo(LUMA.blue, -1);
      let previous = 0;
      for (let k = 0; k < 15; k++) {
        const frame = frames[WINDOW_START + k]!;
        const cover = 2 * Math.round((W / 2) * ((k + 1) / 16));
        const blue = columnsLike(frame, H / 2, LUMA.blue, LUMA.red);
        // Exactly the right-hand `cover` columns are the incoming clip, at every row.
        expect(blue.length, `${name} frame ${WINDOW_START + k}`).toBe(cover);
        expect(blue[0], `${name} frame ${WINDOW_START + k}`).toBe(W - cover);
        expect(columnsLike(frame, 10, LUMA.blue, LUMA.red)).toHaveLength(cover);
        expect(cover).toBeGreaterThan(previous);
        previous = cover;
      }
      // Midpoint: left half outgoing, right half incoming; a quarter / three quarters move the edge.
      const mid = frames[WINDOW_START + 7]!;
      expect(mean(mid, 0, 0, W / 2, H)).toBeCloseTo(LUMA.red, -1);
      expect(mean(mid, W / 2, 0, W / 2, H)).toBeCloseTo(LUMA.blue, -1);
      expect(columnsLike(frames[WINDOW_START + 3]!, H / 2, LUMA.blue, LUMA.red)[0]).toBe((3 * W) / 4);
      expect(columnsLike(frames[WINDOW_START + 11]!, H / 2, LUMA.blue, LUMA.red)[0]).toBe(W / 4);
    });
  });

  it("wipe_right: the incoming move is revealed on the left by an edge travelling left to right", async () => {
    const out = await renderBoth(twoMoves("red", "blue", "wipe_right"));
    onBothPaths(out, (frames, name) => {
      for (let k = 0; k < 15; k++) {
        const frame = frames[WINDOW_START + k]!;
        const cover = 2 * Math.round((W / 2) * ((k + 1) / 16));
        const blue = columnsLike(frame, H / 2, LUMA.blue, LUMA.red);
        expect(blue.length, `${name} frame ${WINDOW_START + k}`).toBe(cover);
        expect(blue[0]).toBe(0);
        expect(blue.at(-1)).toBe(cover - 1);
      }
      const mid = frames[WINDOW_START + 7]!;
      expect(mean(mid, 0, 0, W / 2, H)).toBeCloseTo(LUMA.blue, -1);
      expect(mean(mid, W / 2, 0, W / 2, H)).toBeCloseTo(LUMA.red, -1);
      expect(columnsLike(frames[WINDOW_START + 3]!, H / 2, LUMA.red, LUMA.blue)[0]).toBe(W / 4);
      expect(columnsLike(frames[WINDOW_START + 11]!, H / 2, LUMA.red, LUMA.blue)[0]).toBe((3 * W) / 4);
    });
  });
});

describe("zooms", () => {
  it("zoom_in: the outgoing move zooms into its centre (1× → 2×) while blending into the incoming one", async () => {
    const out = await renderBoth(twoMoves("target", "blue", "zoom_in"));
    onBothPaths(out, (frames, name) => {
      expect(Math.abs(boxWidth(frames[WINDOW_START - 1]!) - 80)).toBeLessThan(2);
      const widths = frames.slice(WINDOW_START, 30).map((frame) => boxWidth(frame));
      widths.forEach((width, k) => {
        // Scale 1 + (k+1)/16: the 80 px box grows to 85 px on the first window frame, 120 px at the midpoint.
        expect(
          Math.abs(width - 80 * (1 + (k + 1) / 16)),
          `${name} frame ${WINDOW_START + k}: ${width}`,
        ).toBeLessThan(3);
        if (k > 0) expect(width).toBeGreaterThan(widths[k - 1]!);
      });
      // The box keeps its aspect ratio (never stretched): its height grows alike.
      expect(Math.abs(boxHeight(frames[WINDOW_START + 7]!) - 60 * 1.5)).toBeLessThan(3);
      // Blending: the incoming clip shows more and more (the white background darkens towards blue).
      const corners = frames.slice(WINDOW_START, 30).map((frame) => mean(frame, 0, 0, 40, 40));
      for (let k = 1; k < corners.length; k++) expect(corners[k]!).toBeLessThan(corners[k - 1]!);
      expect(mean(frames[30]!, 0, 0, W, H)).toBeCloseTo(LUMA.blue, -1);
    });
  });

  it("zoom_out: the incoming move starts magnified (2×) and settles to full frame", async () => {
    const out = await renderBoth(twoMoves("blue", "target", "zoom_out"));
    onBothPaths(out, (frames, name) => {
      const widths = frames.slice(WINDOW_START, 30).map((frame) => boxWidth(frame));
      widths.forEach((width, k) => {
        // Scale 2 − (k+1)/16: 155 px on the first window frame down to 85 px on the last.
        expect(
          Math.abs(width - 80 * (2 - (k + 1) / 16)),
          `${name} frame ${WINDOW_START + k}: ${width}`,
        ).toBeLessThan(3);
        if (k > 0) expect(width).toBeLessThan(widths[k - 1]!);
      });
      expect(Math.abs(boxWidth(frames[30]!) - 80)).toBeLessThan(2);
      expect(mean(frames[WINDOW_START - 1]!, 0, 0, W, H)).toBeCloseTo(LUMA.blue, -1);
    });
  });
});

/** Bounding box of the non-black pixels. */
function pictureBox(frame: Uint8Array): { width: number; height: number } {
  let [left, right, top, bottom] = [W, -1, H, -1];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (frame[y * W + x]! < LUMA.black + 12) continue;
      left = Math.min(left, x);
      right = Math.max(right, x);
      top = Math.min(top, y);
      bottom = Math.max(bottom, y);
    }
  }
  return { width: right - left + 1, height: bottom - top + 1 };
}

describe("rotate", () => {
  it("turns the outgoing move out and the incoming one in about the centre, whole and unstretched, black behind", async () => {
    const out = await renderBoth(twoMoves("redMarked", "blueMarked", "rotate"));
    const corners = (frame: Uint8Array) => [
      mean(frame, 0, 0, 16, 16),
      mean(frame, W - 16, 0, 16, 16),
      mean(frame, 0, H - 16, 16, 16),
      mean(frame, W - 16, H - 16, 16, 16),
    ];
    onBothPaths(out, (frames, name) => {
      // 15-frame window: 7 outgoing frames (15..21), 8 incoming (22..29).
      // First window frame = the outgoing move upright; last = the incoming move upright.
      expect(difference(frames[WINDOW_START]!, frames[WINDOW_START - 1]!), name).toBeLessThan(1.5);
      expect(difference(frames[29]!, frames[30]!), name).toBeLessThan(1.5);
      // Turning: the frames in between differ from both moves.
      for (const f of [17, 20, 23, 27]) {
        expect(difference(frames[f]!, frames[WINDOW_START - 1]!), `${name} frame ${f}`).toBeGreaterThan(5);
        expect(difference(frames[f]!, frames[30]!), `${name} frame ${f}`).toBeGreaterThan(5);
      }
      // Around the midpoint the picture stands nearly a quarter turn: the corners are black padding.
      // It is scaled down just enough to stay whole inside the frame, aspect kept: its bounding box
      // is that of a W×H rectangle turned by the angle and scaled by the fitting factor.
      for (const [f, angle] of [
        [21, ((Math.PI / 2) * 6) / 7],
        [22, (Math.PI / 2) * (1 / 8 - 1)],
      ] as const) {
        for (const corner of corners(frames[f]!))
          expect(corner, `${name} frame ${f}`).toBeLessThan(LUMA.black + 4);
        const [c, s] = [Math.abs(Math.cos(angle)), Math.abs(Math.sin(angle))];
        const fit = Math.min(W / (W * c + H * s), H / (W * s + H * c));
        const box = pictureBox(frames[f]!);
        expect(Math.abs(box.width - fit * (W * c + H * s)), `${name} frame ${f}`).toBeLessThan(4);
        expect(Math.abs(box.height - fit * (W * s + H * c)), `${name} frame ${f}`).toBeLessThan(4);
      }
      expect(mean(frames[21]!, W / 2 - 10, H / 2 - 10, 20, 20)).toBeCloseTo(LUMA.red, -1);
      expect(mean(frames[22]!, W / 2 - 10, H / 2 - 10, 20, 20)).toBeCloseTo(LUMA.blue, -1);
      for (const corner of corners(frames[WINDOW_START - 1]!)) expect(corner).toBeGreaterThan(LUMA.red - 6);
    });
  });
});

describe("the first move's transition (from black)", () => {
  const first = (type: MoveInput["transition_type"], clip = "red"): Blueprint =>
    makeBlueprint(
      [{ video_path: `clips/${clip}.mp4`, duration: 1, transition_type: type, trim_start: 0.2 }],
      {
        crf: 10,
      },
    );

  it("wipe_right reveals the move over black from the left; wipe_left from the right", async () => {
    for (const type of ["wipe_right", "wipe_left"] as const) {
      const out = await renderBoth(first(type));
      onBothPaths(out, (frames, name) => {
        for (let k = 0; k < 15; k++) {
          const cover = 2 * Math.round((W / 2) * ((k + 1) / 16));
          const red = columnsLike(frames[k]!, H / 2, LUMA.red, LUMA.black);
          expect(red.length, `${type} ${name} frame ${k}`).toBe(cover);
          expect(red[0]).toBe(type === "wipe_right" ? 0 : W - cover);
        }
        expect(mean(frames[15]!, 0, 0, W, H)).toBeCloseTo(LUMA.red, -1);
      });
    }
  });

  it("zoom_out settles from 2× while fading in; rotate turns in from a quarter turn; zoom_in fades in", async () => {
    const zoom = await renderBoth(first("zoom_out", "target"));
    onBothPaths(zoom, (frames) => {
      // Fade: frame 0 black, frame k at k/15 of its level; scale 2 − k/15.
      expect(mean(frames[0]!, 0, 0, W, H)).toBeLessThan(LUMA.black + 2);
      const widths = frames.slice(3, 16).map((frame) => boxWidth(frame));
      widths.forEach((width, i) => {
        expect(Math.abs(width - 80 * (2 - (i + 3) / 15))).toBeLessThan(3);
      });
      for (let i = 1; i < widths.length; i++) expect(widths[i]!).toBeLessThan(widths[i - 1]!);
    });
    const rotate = await renderBoth(first("rotate", "redMarked"));
    onBothPaths(rotate, (frames) => {
      // Frame k turned (k+1)/15 − 1 of a quarter: corners black early on, upright from frame 14.
      for (const f of [0, 5]) expect(mean(frames[f]!, 0, 0, 16, 16)).toBeLessThan(LUMA.black + 4);
      expect(difference(frames[14]!, frames[15]!)).toBeLessThan(1.5);
      expect(difference(frames[13]!, frames[15]!)).toBeGreaterThan(2);
    });
    const fade = await renderBoth(first("zoom_in"));
    onBothPaths(fade, (frames) => {
      expect(mean(frames[0]!, 0, 0, W, H)).toBeLessThan(LUMA.black + 2);
      expect(mean(frames[15]!, 0, 0, W, H)).toBeCloseTo(LUMA.red, -1);
    });
  });
});

describe("any size and frame rate", () => {
  it("renders every new transition at 29.97 fps into 640×360 with exact frames on both paths", async () => {
    // Moving footage with trims on the output frame grid: the clip cache maps a trim to the nearest
    // entry frame (docs/decisions/clip-cache.md), so only on-grid trims promise the same frames.
    const F = 29.97;
    const blueprint = makeBlueprint(
      [
        { video_path: "clips/target.mp4", duration: 0.9, transition_type: "zoom_out" },
        { video_path: "clips/motion.mp4", duration: 0.8, transition_type: "wipe_left", trim_start: 9 / F },
        {
          video_path: "clips/blueMarked.mp4",
          duration: 0.7,
          transition_type: "rotate",
          transition_duration: 0.4,
        },
        { video_path: "clips/motion.mp4", duration: 1.1, transition_type: "wipe_right", trim_start: 3 / F },
        {
          video_path: "clips/motion.mp4",
          duration: 0.6,
          transition_type: "zoom_in",
          transition_duration: 0.3,
        },
        { video_path: "clips/target.mp4", duration: 0.75, transition_type: "zoom_out", trim_start: 36 / F },
      ],
      { frame_rate: F, resolution: { width: 640, height: 360 }, crf: 12 },
    );
    const out = await renderBoth(blueprint);
    expect(out.plan.totalFrames).toBe(Math.round(4.85 * F));
    expect(out.plan.pieces.filter((piece) => piece.kind === "transition")).toHaveLength(5);
    onBothPaths(out, () => {});
  });
});
