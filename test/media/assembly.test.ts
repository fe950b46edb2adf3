/** The clip-cache assembly plan (pure): copy ranges, cut-ins, holds, keyframe alignment, exact tiling. */
import { describe, expect, it } from "vitest";
import {
  type AssemblyItem,
  cacheEncoderArgs,
  cacheProfile,
  planAssembly,
  profileId,
} from "../../src/media/assembly.js";
import { planRender } from "../../src/media/plan.js";
import {
  concatQuote,
  MAX_PIECES_IN_FLIGHT,
  MAX_PIECES_PER_RUN,
  piecesPerRun,
  planAssemblySteps,
} from "../../src/media/steps.js";
import { fakeInfo, type MoveInput, makeBlueprint } from "../helpers/blueprints.js";

const song = fakeInfo({ hasVideo: false, hasAudio: true, duration: 60 });

function plan(moves: MoveInput[], output = {}, clipSeconds = 10) {
  const infos = new Map(moves.map((m) => [m.video_path, fakeInfo({ duration: clipSeconds })]));
  return planRender(makeBlueprint(moves, output), infos, song);
}

function entries(keys: string[], frames = 300) {
  return new Map(keys.map((key) => [key, { frames, file: `/cache/${key.replace("/", "_")}` }]));
}

function tiles(items: AssemblyItem[], total: number): void {
  let next = 0;
  for (const item of items) {
    expect(item.startFrame).toBe(next);
    expect(item.frames).toBeGreaterThan(0);
    next += item.frames;
  }
  expect(next).toBe(total);
}

describe("planAssembly", () => {
  it("copies a body from frame 0 whole: one copy item, nothing re-encoded", () => {
    const p = plan([{ video_path: "clips/a.mp4", duration: 4 }]);
    const items = planAssembly(p, entries(["clips/a.mp4"]), 15);
    expect(items).toEqual([
      { kind: "copy", move: 0, key: "clips/a.mp4", startFrame: 0, frames: 120, fromFrame: 0, toFrame: 120 },
    ]);
  });

  it("re-encodes the cut-in up to the next keyframe, then copies from it (trim_start off the GOP)", () => {
    const p = plan([{ video_path: "clips/a.mp4", duration: 2, trim_start: 1.1 }]);
    const items = planAssembly(p, entries(["clips/a.mp4"]), 15);
    // j0 = 33; next keyframe 45.
    expect(items.map((i) => [i.kind, i.kind === "encode" ? i.role : "", i.startFrame, i.frames])).toEqual([
      ["encode", "cut-in", 0, 12],
      ["copy", "", 12, 48],
    ]);
    const copy = items[1]!;
    expect(copy.kind === "copy" && [copy.fromFrame, copy.toFrame]).toEqual([45, 93]);
    const cutIn = items[0]!;
    expect(cutIn.kind === "encode" && cutIn.piece.kind === "body" && cutIn.piece.source).toEqual({
      key: "clips/a.mp4",
      start: 33 / 30,
      frames: 12,
    });
    tiles(items, p.totalFrames);
  });

  it("holds past the entry's last frame in a re-encoded piece", () => {
    const p = plan([{ video_path: "clips/a.mp4", duration: 3 }], {}, 2);
    const items = planAssembly(p, entries(["clips/a.mp4"], 60), 15);
    expect(items.map((i) => [i.kind, i.startFrame, i.frames])).toEqual([
      ["copy", 0, 60],
      ["encode", 60, 30],
    ]);
    const hold = items[1]!;
    expect(hold.kind === "encode" && hold.role).toBe("hold");
    expect(hold.kind === "encode" && hold.piece.kind === "body" && hold.piece.source.start).toBe(2);
    tiles(items, 90);
  });

  it("re-encodes a whole body that has no keyframe inside it", () => {
    const p = plan([{ video_path: "clips/a.mp4", duration: 0.3, trim_start: 0.1 }]);
    const items = planAssembly(p, entries(["clips/a.mp4"]), 15);
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ kind: "encode", role: "body", frames: 9 });
  });

  it("keeps the first move's fade-in inside a re-encoded head; transitions are re-encoded; exact tiling", () => {
    const moves: MoveInput[] = [
      { video_path: "clips/a.mp4", duration: 4, transition_type: "fade_black", transition_duration: 0.6 },
      { video_path: "clips/b.mp4", duration: 4, transition_type: "crossfade", trim_start: 2 },
      { video_path: "clips/a.mp4", duration: 4, transition_type: "cut", trim_start: 0.5 },
    ];
    const p = plan(moves);
    const items = planAssembly(p, entries(["clips/a.mp4", "clips/b.mp4"]), 15);
    tiles(items, p.totalFrames);
    const head = items[0]!;
    // Fade over 18 frames → head up to keyframe 30, with the fade.
    expect(head).toMatchObject({ kind: "encode", role: "cut-in", startFrame: 0, frames: 30 });
    expect(head.kind === "encode" && head.piece.kind === "body" && head.piece.opening).toEqual({
      type: "fade_black",
      frames: 18,
    });
    const transitions = items.filter((i) => i.kind === "encode" && i.role === "transition");
    expect(transitions).toHaveLength(1);
    expect(transitions[0]).toMatchObject({ startFrame: 120 - 15, frames: 15 });
    // Every copy starts on a keyframe; moves still start on their frames.
    for (const item of items) if (item.kind === "copy") expect(item.fromFrame % 15).toBe(0);
    expect(items.some((i) => i.startFrame === 120)).toBe(true);
    expect(items.some((i) => i.startFrame === 240)).toBe(true);
  });

  it("maps a trim_start off the frame grid to the nearest entry frame", () => {
    const p = plan([{ video_path: "clips/a.mp4", duration: 1, trim_start: 0.51 }]);
    const items = planAssembly(p, entries(["clips/a.mp4"]), 15);
    // 0.51·30 = 15.3 → frame 15, a keyframe: copied whole.
    expect(items).toEqual([
      { kind: "copy", move: 0, key: "clips/a.mp4", startFrame: 0, frames: 30, fromFrame: 15, toFrame: 45 },
    ]);
  });
});

describe("planAssemblySteps", () => {
  it("points the concat list into the entries with exact in/out points and re-encodes only the rest", () => {
    const p = plan([
      { video_path: "clips/a.mp4", duration: 2, trim_start: 1.1 },
      { video_path: "clips/b.mp4", duration: 2, transition_type: "crossfade" },
    ]);
    const e = entries(["clips/a.mp4", "clips/b.mp4"]);
    const items = planAssembly(p, e, 15);
    const steps = planAssemblySteps(p, items, {
      entries: e,
      audio: "/in/song.m4a",
      workDir: "/w",
      output: "/o.mp4",
    });
    const encodes = items.filter((i) => i.kind === "encode").length;
    expect(steps.pieces).toHaveLength(encodes + 1);
    expect(steps.concatList.content).toContain("file '/cache/clips_a.mp4'\ninpoint 1.5\noutpoint 2.6\n");
    expect(steps.final.args).toContain("-safe");
    for (const step of steps.pieces.filter((s) => s.kind === "piece")) {
      const args = step.args.join(" ");
      expect(args).toContain(cacheEncoderArgs(p.video, 15).join(" "));
      expect(args).toContain("-f mp4");
    }
  });

  it("batches the re-encoded pieces: one run per batch, a segment file per piece, listed in timeline order", () => {
    const p = plan([
      { video_path: "clips/a.mp4", duration: 2, trim_start: 0.1 },
      { video_path: "clips/b.mp4", duration: 2, transition_type: "crossfade", trim_start: 0.2 },
      { video_path: "clips/a.mp4", duration: 2, transition_type: "wipe_left", trim_start: 0.3 },
    ]);
    const e = entries(["clips/a.mp4", "clips/b.mp4"]);
    const items = planAssembly(p, e, 15);
    const encoded = items.flatMap((item, i) => (item.kind === "encode" ? [{ item, i }] : []));
    expect(encoded).toHaveLength(5);
    const files = { entries: e, audio: "/in/song.m4a", workDir: "/w", output: "/o.mp4" };
    const steps = planAssemblySteps(p, items, files, { piecesPerRun: 3 });
    const runs = steps.pieces.filter((step) => step.kind === "piece");
    expect(runs.map((run) => run.id)).toEqual(["batch-0000", "batch-0001"]);
    expect(runs.map((run) => run.frames)).toEqual([
      encoded.slice(0, 3).reduce((sum, { item }) => sum + item.frames, 0),
      encoded.slice(3).reduce((sum, { item }) => sum + item.frames, 0),
    ]);
    const first = runs[0]!.args;
    const cuts = [encoded[0]!.item.frames, encoded[0]!.item.frames + encoded[1]!.item.frames];
    expect(first[first.indexOf("-segment_frames") + 1]).toBe(cuts.join(","));
    expect(first[first.indexOf("-force_key_frames") + 1]).toBe(`expr:eq(n,${cuts[0]})+eq(n,${cuts[1]})`);
    expect(first.at(-1)).toBe("/w/batch-0000-%03d.mp4");
    expect(first.join(" ")).toContain(cacheEncoderArgs(p.video, 15).join(" "));
    // Every piece's graph ends trimmed to its frames, then all are concatenated into one encoder.
    const graph = first[first.indexOf("-filter_complex") + 1]!;
    for (const [k, { item }] of encoded.slice(0, 3).entries()) {
      expect(graph).toContain(`[p${k}]trim=end_frame=${item.frames}[c${k}]`);
    }
    expect(graph).toContain("[c0][c1][c2]concat=n=3:v=1:a=0[v]");
    // The join lists the pieces where they are in the timeline, between the copies.
    const listed = steps.concatList.content.split("\n").filter((line) => line.startsWith("file '"));
    const names = ["batch-0000-000", "batch-0000-001", "batch-0000-002", "batch-0001-000", "batch-0001-001"];
    expect(listed.filter((line) => !line.includes("/cache/"))).toEqual(names.map((n) => `file '${n}.mp4'`));
    expect(steps.outputs).toEqual([...names.map((n) => `/w/${n}.mp4`), expect.stringMatching(/^\/w\/audio/)]);
    // One run per piece unless asked.
    expect(planAssemblySteps(p, items, files).pieces.filter((step) => step.kind === "piece")).toHaveLength(5);
  });

  it("sizes batches to keep every CPU busy, at most MAX_PIECES_PER_RUN a run and MAX_PIECES_IN_FLIGHT at once", () => {
    expect(piecesPerRun(28, 1)).toBe(MAX_PIECES_PER_RUN);
    expect(piecesPerRun(3, 1)).toBe(3);
    expect(piecesPerRun(28, 2)).toBe(MAX_PIECES_IN_FLIGHT / 2);
    expect(piecesPerRun(3, 2)).toBe(2);
    expect(piecesPerRun(2, 2)).toBe(1);
    expect(piecesPerRun(28, 4)).toBe(1);
    expect(piecesPerRun(28, 8)).toBe(1);
    expect(piecesPerRun(0, 1)).toBe(1);
  });

  it("quotes file names for ffconcat", () => {
    expect(concatQuote("/a/it's.mp4")).toBe("'/a/it'\\''s.mp4'");
  });
});

describe("cache profile", () => {
  it("differs by size, rate and encoder settings; is stable otherwise", () => {
    const base = plan([{ video_path: "clips/a.mp4", duration: 1 }]);
    const id = profileId(cacheProfile(base));
    expect(profileId(cacheProfile(plan([{ video_path: "clips/b.mp4", duration: 2 }])))).toBe(id);
    expect(
      profileId(cacheProfile(plan([{ video_path: "clips/a.mp4", duration: 1 }], { frame_rate: 25 }))),
    ).not.toBe(id);
    const small = plan([{ video_path: "clips/a.mp4", duration: 1 }], {
      resolution: { width: 640, height: 360 },
    });
    expect(profileId(cacheProfile(small))).not.toBe(id);
    expect(profileId(cacheProfile(plan([{ video_path: "clips/a.mp4", duration: 1 }], { crf: 20 })))).not.toBe(
      id,
    );
    expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
  });
});
