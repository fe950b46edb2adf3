/** Real renders of tiny fixtures; assertions on outcomes (frames, colours, levels), not on arguments. */
import { copyFileSync, statSync, truncateSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyOutput } from "../../src/media/verify.js";
import { makeBlueprint } from "../helpers/blueprints.js";
import { type ClipName, clipFixture, makeSongFixture } from "../helpers/fixtures.js";
import { colourDistance, type FrameStats, frameStats, meanVolume } from "../helpers/measure.js";
import { cleanup, type Rendered, render } from "./helpers.js";

const CLIP_NAMES: ClipName[] = [
  "red",
  "green",
  "blue",
  "yellow",
  "portrait",
  "anamorphic",
  "rotated",
  "vfr",
  "timecode",
  "withAudio",
  "short",
];
const files: Record<string, string> = {};
let song: string;
const reference = new Map<string, FrameStats>();
const rendered: Rendered[] = [];

beforeAll(() => {
  for (const name of CLIP_NAMES) files[`clips/${name}.mp4`] = clipFixture(name);
  song = makeSongFixture("song-10s", 10);
  for (const name of ["red", "green", "blue", "yellow"] as const) {
    reference.set(name, frameStats(files[`clips/${name}.mp4`]!)[0]!);
  }
});
afterAll(() => {
  for (const r of rendered) cleanup(r);
});

async function run(...args: Parameters<typeof render>): Promise<Rendered> {
  const result = await render(...args);
  rendered.push(result);
  return result;
}

/** Grey level of the timecode clips at source time t (see fixtures). */
const grey = (t: number) => 16 + 70 * t;

/** The frame shows this clip's colour (its average, the small marker aside). */
function expectColour(frame: FrameStats | undefined, name: string): void {
  expect(frame).toBeDefined();
  expect(colourDistance(frame!, reference.get(name)!)).toBeLessThan(8);
}

describe("transitions", () => {
  it("cut: each move's first frame is its clip, the frame before is the previous clip", async () => {
    const blueprint = makeBlueprint([
      { video_path: "clips/red.mp4", duration: 1 },
      { video_path: "clips/green.mp4", duration: 1 },
    ]);
    const r = await run(blueprint, files, song);
    expect(r.verified).toMatchObject({
      width: 320,
      height: 240,
      fps: 30,
      duration: 2,
      video_codec: "h264",
      audio_codec: "aac",
    });
    const frames = frameStats(r.file);
    expect(frames).toHaveLength(60);
    expectColour(frames[0], "red");
    expectColour(frames[29], "red");
    expectColour(frames[30], "green");
    expectColour(frames[59], "green");
  });

  it("crossfade: the window lies before the incoming move and blends both clips", async () => {
    const blueprint = makeBlueprint([
      { video_path: "clips/red.mp4", duration: 1 },
      { video_path: "clips/blue.mp4", duration: 1, transition_type: "crossfade" },
    ]);
    const r = await run(blueprint, files, song);
    const frames = frameStats(r.file);
    expect(frames).toHaveLength(60);
    expectColour(frames[14], "red");
    expectColour(frames[30], "blue");
    const mid = frames[22]!;
    expect(colourDistance(mid, reference.get("red")!)).toBeGreaterThan(30);
    expect(colourDistance(mid, reference.get("blue")!)).toBeGreaterThan(30);
    // Linear: the blue share grows through the window.
    const vs = frames.slice(15, 30).map((f) => f.v);
    for (let i = 1; i < vs.length; i++) expect(vs[i]!).toBeLessThan(vs[i - 1]!);
  });

  it("fade_black dips to black at the window's midpoint", async () => {
    const blueprint = makeBlueprint([
      { video_path: "clips/red.mp4", duration: 1 },
      { video_path: "clips/green.mp4", duration: 1, transition_type: "fade_black" },
    ]);
    const r = await run(blueprint, files, song);
    const frames = frameStats(r.file);
    expect(frames).toHaveLength(60);
    expect(frames[22]!.y).toBeLessThan(30);
    expectColour(frames[14], "red");
    expectColour(frames[30], "green");
  });

  it("fade_white dips to white at the window's midpoint; a first move fades in from white", async () => {
    const blueprint = makeBlueprint([
      { video_path: "clips/green.mp4", duration: 1, transition_type: "fade_white" },
      { video_path: "clips/blue.mp4", duration: 1, transition_type: "fade_white" },
    ]);
    const r = await run(blueprint, files, song);
    const frames = frameStats(r.file);
    expect(frames).toHaveLength(60);
    expect(frames[0]!.y).toBeGreaterThan(200);
    expect(frames[22]!.y).toBeGreaterThan(200);
    expectColour(frames[30], "blue");
  });

  it("mixed sequence: awkward times, 25/30/60 fps, SAR, rotation, portrait — exact frames, moves on their beats", async () => {
    const blueprint = makeBlueprint([
      {
        video_path: "clips/red.mp4",
        duration: 0.3333,
        transition_type: "crossfade",
        transition_duration: 0.1,
      },
      {
        video_path: "clips/blue.mp4",
        duration: 0.6667,
        transition_type: "crossfade",
        transition_duration: 0.2,
      },
      {
        video_path: "clips/yellow.mp4",
        duration: 0.75,
        transition_type: "fade_black",
        transition_duration: 0.4,
      },
      { video_path: "clips/anamorphic.mp4", duration: 0.5 },
      {
        video_path: "clips/rotated.mp4",
        duration: 0.5,
        transition_type: "fade_white",
        transition_duration: 0.2,
      },
      {
        video_path: "clips/portrait.mp4",
        duration: 0.6,
        transition_type: "crossfade",
        transition_duration: 0.2,
      },
      { video_path: "clips/withAudio.mp4", duration: 0.45 },
      { video_path: "clips/green.mp4", duration: 0.5, trim_start: 0.2, transition_type: "crossfade" },
    ]);
    const r = await run(blueprint, files, song);
    const frames = frameStats(r.file);
    expect(r.plan.totalFrames).toBe(129);
    expect(frames).toHaveLength(r.plan.totalFrames);
    expect(r.verified.duration).toBeCloseTo(r.plan.totalFrames / 30, 2);
    // A fade_black of 0.4 s into a 0.6667 s / 0.75 s pair keeps its 12 frames; move 3 starts at frame 30.
    expect(r.plan.moves.map((m) => m.startFrame)).toEqual([0, 10, 30, 53, 68, 83, 101, 114]);
    expectColour(frames[10], "blue");
    // The 16:9 clip is letterboxed in the 4:3 frame: compare its centre.
    expectColour(frameStats(r.file, "160:60:80:90")[30], "yellow");
    expect(frameStats(r.file, "320:20:0:0")[30]!.y).toBeLessThan(20);
    expect(frames[29]!.y).toBeGreaterThan(40); // not black: the dip is before move 3, ending in its pre-roll
    // The anamorphic clip (SAR 4:3) fills the 4:3 frame: its corners are not black.
    const anamorphicCorner = frameStats(r.file, "8:8:0:232")[60]!;
    expect(anamorphicCorner.y).toBeGreaterThan(60);
    // The rotated and portrait clips are pillarboxed: black left/right columns, colour in the centre.
    const left = frameStats(r.file, "40:240:0:0");
    const centre = frameStats(r.file, "40:240:140:0");
    for (const frame of [75, 95]) {
      expect(left[frame]!.y).toBeLessThan(20);
      expect(centre[frame]!.y).toBeGreaterThan(60);
    }
  });
});

describe("footage", () => {
  it("selects source frames exactly after a seek (trim_start 1/3 s, 1.0 s past a keyframe)", async () => {
    const blueprint = makeBlueprint(
      [
        { video_path: "clips/timecode.mp4", duration: 0.5, trim_start: 0.3333 },
        { video_path: "clips/timecode.mp4", duration: 0.5, trim_start: 2.1 },
        { video_path: "clips/timecode.mp4", duration: 0.5, trim_start: 0 },
      ],
      { crf: 12 },
    );
    const r = await run(blueprint, files, song);
    const frames = frameStats(r.file);
    // One source frame is 2.33 grey levels: a tolerance of 1.1 catches an off-by-one.
    const expectSourceFrame = (frame: FrameStats | undefined, sourceFrame: number) =>
      expect(Math.abs(frame!.y - grey(sourceFrame / 30))).toBeLessThan(1.1);
    expectSourceFrame(frames[0], 10);
    expectSourceFrame(frames[14], 24);
    expectSourceFrame(frames[15], 63);
    expectSourceFrame(frames[29], 77);
    expectSourceFrame(frames[30], 0);
  });

  it("a variable-frame-rate clip does not drift: frame k shows source time ≈ k/F", async () => {
    const blueprint = makeBlueprint([{ video_path: "clips/vfr.mp4", duration: 3 }], { crf: 12 });
    const r = await run(blueprint, files, song);
    const frames = frameStats(r.file);
    expect(frames).toHaveLength(90);
    for (const k of [0, 30, 60, 88]) {
      // The frame current at k/30, or the one before it when that one was dropped (2.33 grey levels).
      const y = frames[k]!.y;
      expect(y).toBeGreaterThan(grey(k / 30) - 3.5);
      expect(y).toBeLessThan(grey(k / 30) + 1.1);
    }
  });

  it("holds a short clip's last frame for the rest of its move (and warns)", async () => {
    const blueprint = makeBlueprint([
      { video_path: "clips/short.mp4", duration: 2 },
      { video_path: "clips/timecode.mp4", duration: 1, trim_start: 5 },
    ]);
    const r = await run(blueprint, files, song);
    expect(r.plan.warnings.join("\n")).toMatch(
      /move 1 \(move_1\): clips\/short\.mp4 is 1\.00 s long .* held for 1\.00 s/,
    );
    expect(r.plan.warnings.join("\n")).toMatch(/move 2 \(move_2\): clips\/timecode\.mp4 is 3\.00 s long/);
    const frames = frameStats(r.file);
    expect(frames).toHaveLength(90);
    for (const k of [30, 45, 59]) expect(colourDistance(frames[k]!, frames[29]!)).toBeLessThan(1);
    // Trimmed past its end: the timecode clip's last frame (≈ 2.967 s) throughout.
    expect(Math.abs(frames[60]!.y - grey(89 / 30))).toBeLessThan(1.1);
    expect(Math.abs(frames[89]!.y - frames[60]!.y)).toBeLessThan(0.5);
  });
});

describe("audio and output", () => {
  it("pads a short song with silence: the video is not cut, A/V within one frame, the tail is silent", async () => {
    const shortSong = makeSongFixture("song-1.5s", 1.5);
    const blueprint = makeBlueprint(
      [
        { video_path: "clips/red.mp4", duration: 1.5 },
        { video_path: "clips/green.mp4", duration: 1.5 },
      ],
      { fade_duration: 0.2 },
    );
    const r = await run(blueprint, files, shortSong);
    expect(r.plan.warnings.join("\n")).toMatch(/silence fills the rest/);
    expect(r.verified.duration).toBeCloseTo(3, 2);
    expect(meanVolume(r.file, 0.3, 1.2)).toBeGreaterThan(-40);
    expect(meanVolume(r.file, 1.7, 2.9)).toBeLessThan(-80);
  });

  it("renders webm (VP9 + Opus) that verifies", async () => {
    const blueprint = makeBlueprint(
      [
        { video_path: "clips/red.mp4", duration: 0.5 },
        {
          video_path: "clips/blue.mp4",
          duration: 0.5,
          transition_type: "crossfade",
          transition_duration: 0.2,
        },
      ],
      { output_format: "webm", video_codec: "libvpx-vp9", audio_codec: "libopus", crf: 40 },
    );
    const r = await run(blueprint, files, song);
    expect(r.verified).toMatchObject({ video_codec: "vp9", audio_codec: "opus", width: 320, height: 240 });
    expect(frameStats(r.file)).toHaveLength(30);
  });

  it("reports progress from 0 to 100, only forwards; an aborted render rejects with the reason", async () => {
    const blueprint = makeBlueprint([
      { video_path: "clips/red.mp4", duration: 1 },
      { video_path: "clips/green.mp4", duration: 1, transition_type: "crossfade" },
      { video_path: "clips/blue.mp4", duration: 1 },
    ]);
    const percents: number[] = [];
    await run(blueprint, files, song, { concurrency: 1, onProgress: (p) => percents.push(p.percent) });
    expect(percents.at(-1)).toBe(100);
    expect(percents.length).toBeGreaterThan(2);
    for (let i = 1; i < percents.length; i++) expect(percents[i]!).toBeGreaterThanOrEqual(percents[i - 1]!);

    const controller = new AbortController();
    const reason = new Error("terminated");
    setTimeout(() => controller.abort(reason), 150);
    await expect(run(blueprint, files, song, { signal: controller.signal })).rejects.toBe(reason);
  });

  it("verifyOutput rejects a truncated file and a file that does not match the plan", async () => {
    const blueprint = makeBlueprint([{ video_path: "clips/red.mp4", duration: 1 }]);
    const r = await run(blueprint, files, song);
    const truncated = path.join(r.dir, "truncated.mp4");
    copyFileSync(r.file, truncated);
    truncateSync(truncated, Math.floor(statSync(truncated).size / 2));
    await expect(verifyOutput(truncated, r.plan)).rejects.toMatchObject({ code: "VERIFY_FAILED" });
    await expect(
      verifyOutput(r.file, { ...r.plan, totalFrames: 31, duration: 31 / 30 }),
    ).rejects.toMatchObject({
      code: "VERIFY_FAILED",
      message: expect.stringContaining("it has 30 video frames, expected 31"),
    });
  });
});
