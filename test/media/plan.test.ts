import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TRANSITION_TYPES, type TransitionType } from "../../src/blueprint/types.js";
import { JobError } from "../../src/errors.js";
import { fitInto, rateString, secs, spanFilter } from "../../src/media/filters.js";
import type { MediaInfo } from "../../src/media/media-info.js";
import { type BodyPiece, frameAt, planRender, type TransitionPiece } from "../../src/media/plan.js";
import { planCommands, planSteps } from "../../src/media/steps.js";
import { fakeInfo, type MoveInput, makeBlueprint } from "../helpers/blueprints.js";

const song = fakeInfo({ hasVideo: false, hasAudio: true, duration: 600, width: 0, height: 0 });

function infos(entries: Record<string, Partial<MediaInfo>>): Map<string, MediaInfo> {
  return new Map(Object.entries(entries).map(([key, info]) => [key, fakeInfo(info)]));
}

const FILES = {
  inputs: new Map([
    ["a.mp4", "/in/a.mp4"],
    ["b.mp4", "/in/b.mp4"],
    ["c.mp4", "/in/c.mp4"],
  ]),
  audio: "/in/song.m4a",
  workDir: "/work",
  output: "/out/out.mp4",
};

const bodies = (pieces: readonly (BodyPiece | TransitionPiece)[]) =>
  pieces.filter((p): p is BodyPiece => p.kind === "body");
const transitions = (pieces: readonly (BodyPiece | TransitionPiece)[]) =>
  pieces.filter((p): p is TransitionPiece => p.kind === "transition");

describe("frameAt", () => {
  it("rounds to the nearest frame despite binary noise", () => {
    expect(frameAt(8.1, 30)).toBe(243);
    expect(frameAt(0.3333, 30)).toBe(10);
    expect(frameAt(0.25, 30)).toBe(8); // 7.5 rounds up
    expect(frameAt(1 / 3, 30)).toBe(10);
    expect(frameAt(7.7, 25)).toBe(193); // 192.5
  });
});

describe("planRender: timeline", () => {
  it("places moves on round(start·F) with awkward start times and tiles exactly", () => {
    const blueprint = makeBlueprint([
      { video_path: "a.mp4", duration: 0.3333 },
      { video_path: "b.mp4", duration: 0.6667 },
      { video_path: "c.mp4", duration: 1.0 },
    ]);
    const plan = planRender(blueprint, infos({ "a.mp4": {}, "b.mp4": {}, "c.mp4": {} }), song);
    expect(plan.moves.map((m) => [m.startFrame, m.endFrame])).toEqual([
      [0, 10],
      [10, 30],
      [30, 60],
    ]);
    expect(plan.totalFrames).toBe(60);
    expect(plan.duration).toBe(2);
    expect(bodies(plan.pieces).map((b) => [b.startFrame, b.frames])).toEqual([
      [0, 10],
      [10, 20],
      [30, 30],
    ]);
    expect(plan.warnings).toEqual([]);
  });

  it("keeps the total at round(total·F) when moves start within half a frame of the previous end", () => {
    const blueprint = makeBlueprint([
      { video_path: "a.mp4", duration: 1.01 },
      { video_path: "b.mp4", duration: 0.99 },
    ]);
    // The parser accepts starts within half a frame of the previous end.
    blueprint.moves[1]!.start_time = 1.0;
    blueprint.total_duration = 1.99;
    const plan = planRender(blueprint, infos({ "a.mp4": {}, "b.mp4": {} }), song);
    expect(plan.moves.map((m) => [m.startFrame, m.endFrame])).toEqual([
      [0, 30],
      [30, 60],
    ]);
    expect(plan.totalFrames).toBe(60);
  });

  it("tiles the output with pieces for any durations and transitions (property)", () => {
    const move = fc.record({
      duration: fc.double({ min: 0.07, max: 5, noNaN: true }),
      transition: fc.constantFrom<TransitionType>(...TRANSITION_TYPES),
      window: fc.option(fc.double({ min: 0.01, max: 3, noNaN: true }), { nil: undefined }),
      trim: fc.double({ min: 0, max: 4, noNaN: true }),
    });
    fc.assert(
      fc.property(
        fc.array(move, { minLength: 1, maxLength: 12 }),
        fc.constantFrom(24, 25, 30, 60),
        (moves, fps) => {
          const blueprint = makeBlueprint(
            moves.map((m) => ({
              video_path: "a.mp4",
              duration: m.duration,
              transition_type: m.transition,
              trim_start: m.trim,
              ...(m.window === undefined ? {} : { transition_duration: m.window }),
            })),
            { frame_rate: fps },
          );
          const plan = planRender(blueprint, infos({ "a.mp4": { duration: 3 } }), song);
          expect(plan.totalFrames).toBe(frameAt(blueprint.total_duration, fps));
          let next = 0;
          for (const piece of plan.pieces) {
            expect(piece.startFrame).toBe(next);
            expect(piece.frames).toBeGreaterThan(0);
            next += piece.frames;
          }
          expect(next).toBe(plan.totalFrames);
          // Every move starts exactly on its frame; windows lie before it, inside the previous move.
          for (const t of transitions(plan.pieces)) {
            expect(t.startFrame + t.frames).toBe(plan.moves[t.move]!.startFrame);
            expect(t.startFrame).toBeGreaterThan(plan.moves[t.move - 1]!.startFrame);
          }
          for (const b of bodies(plan.pieces)) expect(b.startFrame).toBe(plan.moves[b.move]!.startFrame);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("planRender: transitions", () => {
  const threeMoves = (type: TransitionType, extra: Partial<MoveInput> = {}) =>
    makeBlueprint([
      { video_path: "a.mp4", duration: 2, trim_start: 1 },
      { video_path: "b.mp4", duration: 2, transition_type: type, trim_start: 2, ...extra },
      { video_path: "c.mp4", duration: 2 },
    ]);
  const clips = infos({ "a.mp4": {}, "b.mp4": {}, "c.mp4": {} });

  it("puts a crossfade window before the incoming move, with its pre-roll", () => {
    const plan = planRender(threeMoves("crossfade"), clips, song);
    const [t] = transitions(plan.pieces);
    expect(t).toMatchObject({ type: "crossfade", move: 1, startFrame: 45, frames: 15 });
    // Outgoing: move 0 continues (its frames 45..59 = source 1 + 45/30 s).
    expect(t!.outgoing).toEqual({ key: "a.mp4", start: 2.5, frames: 15 });
    // Incoming pre-roll: the 15 source frames just before trim_start 2.0.
    expect(t!.incoming).toEqual({ key: "b.mp4", start: 1.5, frames: 15 });
    const b = bodies(plan.pieces);
    expect(b.map((p) => [p.startFrame, p.frames, p.source.start])).toEqual([
      [0, 45, 1],
      [60, 60, 2],
      [120, 60, 0],
    ]);
  });

  it("splits a dip into the outgoing first half and the incoming second half", () => {
    const plan = planRender(threeMoves("fade_black"), clips, song);
    const [t] = transitions(plan.pieces);
    expect(t).toMatchObject({ type: "fade_black", startFrame: 45, frames: 15 });
    expect(t!.outgoing).toEqual({ key: "a.mp4", start: 2.5, frames: 7 });
    expect(t!.incoming.frames).toBe(8);
    expect(t!.incoming.start).toBeCloseTo(2 - 8 / 30, 9);
  });

  it("uses the per-move window over output_config's", () => {
    const plan = planRender(threeMoves("fade_white", { transition_duration: 0.2 }), clips, song);
    expect(transitions(plan.pieces)[0]).toMatchObject({ startFrame: 54, frames: 6, type: "fade_white" });
  });

  it("clamps a window to half of the shorter neighbouring move, with a warning", () => {
    const blueprint = makeBlueprint([
      { video_path: "a.mp4", duration: 2 },
      { video_path: "b.mp4", duration: 0.5, transition_type: "crossfade", transition_duration: 1.5 },
      { video_path: "c.mp4", duration: 2, transition_type: "fade_black", transition_duration: 1 },
    ]);
    const plan = planRender(blueprint, clips, song);
    expect(transitions(plan.pieces).map((t) => [t.move, t.frames])).toEqual([
      [1, 7],
      [2, 7],
    ]);
    expect(plan.warnings).toHaveLength(2);
    expect(plan.warnings[0]).toMatch(
      /Transition into move 2 \(move_2\): 1\.50 s window shortened to 0\.23 s/,
    );
    // Move 2 (15 frames) keeps a body of its own between the two windows.
    expect(bodies(plan.pieces)[1]).toMatchObject({ startFrame: 60, frames: 8 });
  });

  it("gives the first move's body its opening transition over the window (none for a cut)", () => {
    for (const type of TRANSITION_TYPES.filter((t) => t !== "cut")) {
      const blueprint = makeBlueprint([{ video_path: "a.mp4", duration: 2, transition_type: type }]);
      const plan = planRender(blueprint, clips, song);
      expect(plan.pieces).toHaveLength(1);
      expect(bodies(plan.pieces)[0]!.opening).toEqual({ type, frames: 15 });
    }
    const cut = planRender(makeBlueprint([{ video_path: "a.mp4", duration: 2 }]), clips, song);
    expect(bodies(cut.pieces)[0]!.opening).toBeUndefined();
  });

  it("splits dip and rotate windows in halves; blends, wipes and zooms use both moves for the whole window", () => {
    for (const type of TRANSITION_TYPES.filter((t) => t !== "cut")) {
      const plan = planRender(threeMoves(type, { transition_duration: 0.5 }), clips, song);
      const window = transitions(plan.pieces)[0]!;
      const half = type === "fade_black" || type === "fade_white" || type === "rotate";
      expect([type, window.frames, window.outgoing.frames, window.incoming.frames]).toEqual([
        type,
        15,
        half ? 7 : 15,
        half ? 8 : 15,
      ]);
      expect(window.incoming.start).toBeCloseTo(2 - window.incoming.frames / 30, 9);
    }
  });

  it("renders consecutive cuts as consecutive bodies", () => {
    const plan = planRender(threeMoves("cut"), clips, song);
    expect(plan.pieces.map((p) => [p.kind, p.startFrame, p.frames])).toEqual([
      ["body", 0, 60],
      ["body", 60, 60],
      ["body", 120, 60],
    ]);
  });
});

describe("planRender: footage, size, audio", () => {
  it("warns when a clip runs out and its last frame is held", () => {
    const blueprint = makeBlueprint([
      { video_path: "a.mp4", duration: 2 },
      { video_path: "b.mp4", duration: 2, trim_start: 0.5 },
    ]);
    const plan = planRender(blueprint, infos({ "a.mp4": { duration: 2 }, "b.mp4": { duration: 1.5 } }), song);
    expect(plan.warnings).toEqual([
      "move 2 (move_2): b.mp4 is 1.50 s long but the move needs 2.50 s from trim_start 0.50 s; its last frame is held for 1.00 s",
    ]);
  });

  it("warns when the song is shorter than the video (silence fills the rest)", () => {
    const plan = planRender(makeBlueprint([{ video_path: "a.mp4", duration: 4 }]), infos({ "a.mp4": {} }), {
      ...song,
      duration: 3,
    });
    expect(plan.warnings).toEqual([
      "The song songs/song.m4a is 3.00 s long but the video lasts 4.00 s; silence fills the rest",
    ]);
    expect(plan.audio).toMatchObject({ duration: 4, songDuration: 3, sampleRate: 48000, channels: 2 });
  });

  it("takes the first clip's display size (rotation applied), capped at 1920 and even", () => {
    const rotated = {
      width: 3840,
      height: 2160,
      displayWidth: 2160,
      displayHeight: 3840,
      rotation: 90 as const,
    };
    const plan = planRender(
      makeBlueprint([{ video_path: "a.mp4", duration: 1 }]),
      infos({ "a.mp4": rotated }),
      song,
    );
    expect([plan.width, plan.height]).toEqual([1080, 1920]);
    const odd = infos({ "a.mp4": { displayWidth: 321, displayHeight: 241 } });
    const small = planRender(makeBlueprint([{ video_path: "a.mp4", duration: 1 }]), odd, song);
    expect([small.width % 2, small.height % 2]).toEqual([0, 0]);
    const given = planRender(
      makeBlueprint([{ video_path: "a.mp4", duration: 1 }], { resolution: { width: 640, height: 360 } }),
      infos({ "a.mp4": rotated }),
      song,
    );
    expect([given.width, given.height]).toEqual([640, 360]);
    // The portrait clip is fitted (not stretched) and centred in the landscape frame.
    expect(given.sources["a.mp4"]!.fit).toEqual({ width: 202, height: 360, x: 218, y: 0 });
  });

  it("rejects a song without audio and a clip without video (MEDIA_INVALID naming the key)", () => {
    const blueprint = makeBlueprint([{ video_path: "a.mp4", duration: 1 }]);
    expect(() => planRender(blueprint, infos({ "a.mp4": {} }), { ...song, hasAudio: false })).toThrow(
      expect.objectContaining({ code: "MEDIA_INVALID", message: "Song songs/song.m4a has no audio stream" }),
    );
    expect(() => planRender(blueprint, infos({ "a.mp4": { hasVideo: false } }), song)).toThrow(JobError);
  });
});

describe("filters", () => {
  it("formats seconds and rates for FFmpeg", () => {
    expect(secs(1.5)).toBe("1.5");
    expect(secs(2)).toBe("2");
    expect(secs(1 / 3)).toBe("0.333333");
    expect(secs(1e-9)).toBe("0");
    expect(rateString(30)).toBe("30/1");
    expect(rateString(29.97)).toBe("30000/1001");
    expect(rateString(12.5)).toBe("12500/1000");
  });

  it("fits with the aspect kept and even offsets", () => {
    expect(fitInto(1280, 720, 1280, 720)).toEqual({ width: 1280, height: 720, x: 0, y: 0 });
    expect(fitInto(720, 1280, 1280, 720)).toEqual({ width: 406, height: 720, x: 436, y: 0 });
    expect(fitInto(320, 240, 1280, 720)).toEqual({ width: 960, height: 720, x: 160, y: 0 });
  });

  const source = {
    file: "/in/a.mp4",
    demuxer: "mov" as const,
    duration: 10,
    fit: { width: 320, height: 240, x: 0, y: 0 },
  };
  const pinned = ["-f", "mov", "-protocol_whitelist", "file", "-max_pixels", "36000000", "-i", "/in/a.mp4"];

  it("seeks a margin early on the output grid and trims the margin exactly", () => {
    const span = spanFilter({ start: 5, frames: 45 }, source, 30, 320, 240);
    expect(span.inputArgs).toEqual(["-ss", "4.5", "-t", "3", "-threads", "1", ...pinned]);
    expect(span.chain).toBe(
      "fps=30/1:start_time=0,trim=start_frame=15,setpts=PTS-STARTPTS,scale=320:240,setsar=1,format=yuv420p,tpad=stop=-1:stop_mode=clone,trim=end_frame=45,setpts=N/FRAME_RATE/TB",
    );
  });

  it("holds the first frame for a pre-roll before the source's start", () => {
    const span = spanFilter({ start: -0.3, frames: 15 }, source, 30, 320, 240);
    expect(span.inputArgs).toEqual(["-t", "1.2", "-threads", "1", ...pinned]);
    expect(span.chain).toContain("tpad=start=9:start_mode=clone:stop=-1:stop_mode=clone");
    const all = spanFilter({ start: -1, frames: 15 }, source, 30, 320, 240);
    expect(all.chain).toContain("tpad=start=14:start_mode=clone");
  });

  it("holds the last frame when the span starts past the source's end", () => {
    const span = spanFilter({ start: 12, frames: 30 }, source, 30, 320, 240);
    expect(span.inputArgs).toEqual(["-ss", "9", "-threads", "1", ...pinned]);
    expect(span.chain.startsWith("reverse,trim=end_frame=1,")).toBe(true);
    expect(span.chain).toContain("trim=end_frame=30");
  });

  it("pads a narrower picture centred in black", () => {
    const portrait = { ...source, fit: { width: 136, height: 240, x: 92, y: 0 } };
    expect(spanFilter({ start: 0, frames: 3 }, portrait, 30, 320, 240).chain).toContain(
      "scale=136:240,pad=320:240:92:0:black,setsar=1",
    );
  });
});

describe("planCommands", () => {
  const blueprint = makeBlueprint([
    { video_path: "a.mp4", duration: 2, transition_type: "fade_white" },
    { video_path: "b.mp4", duration: 2, transition_type: "crossfade", trim_start: 3 },
    { video_path: "c.mp4", duration: 2, transition_type: "fade_black" },
  ]);
  const plan = planRender(blueprint, infos({ "a.mp4": {}, "b.mp4": {}, "c.mp4": {} }), song);

  it("renders each piece with its exact frame count and identical encoder settings, then joins by copy", () => {
    const commands = planCommands(plan, FILES);
    // 3 bodies + 2 windows + the song + the join.
    expect(commands).toHaveLength(7);
    const videoPieces = commands.slice(0, 5);
    const framesOf = (args: string[]) => Number(args[args.indexOf("-frames:v") + 1]);
    expect(videoPieces.map(framesOf)).toEqual([45, 15, 45, 15, 60]);
    const encoderOf = (args: string[]) => args.slice(args.indexOf("-c:v"), args.indexOf("-an"));
    for (const args of videoPieces) {
      expect(encoderOf(args)).toEqual([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-profile:v",
        "high",
        "-crf",
        "23",
        "-pix_fmt",
        "yuv420p",
        "-threads",
        "1",
      ]);
    }
    expect(commands[0]!.join(" ")).toContain("fade=t=in:s=0:n=15:c=white");
    expect(commands[1]!.join(" ")).toContain("overlay=");
    expect(commands[1]!.filter((a) => a === "-i")).toHaveLength(2);
    expect(commands[3]!.join(" ")).toMatch(/fade=t=out:s=0:n=7\[a\].*fade=t=in:s=0:n=8\[b\]/);

    const final = commands[6]!;
    expect(final).toEqual(expect.arrayContaining(["-f", "concat", "-c", "copy", "-movflags", "+faststart"]));
    expect(final[final.indexOf("-t") + 1]).toBe("6");
    expect(final.at(-1)).toBe("/out/out.mp4");
    for (const args of commands) expect(args).not.toContain("-shortest");
  });

  it("encodes the song once: cut or padded to the timeline, faded, normalised, 48 kHz stereo", () => {
    const withAudio = planRender(
      makeBlueprint([{ video_path: "a.mp4", duration: 4 }], { fade_duration: 0.5, normalize_audio: true }),
      infos({ "a.mp4": {} }),
      { ...song, duration: 3 },
    );
    const steps = planSteps(withAudio, FILES);
    const audio = steps.pieces.find((s) => s.kind === "audio")!;
    const filter = audio.args[audio.args.indexOf("-af") + 1];
    expect(filter).toBe(
      "atrim=end=4,asetpts=PTS-STARTPTS,loudnorm=I=-16:TP=-1.5:LRA=11,aresample=48000,aformat=channel_layouts=stereo,afade=t=in:st=0:d=0.5,afade=t=out:st=2.5:d=0.5,apad=whole_dur=4,atrim=end=4",
    );
    expect(audio.args).toEqual(
      expect.arrayContaining(["-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2"]),
    );
    expect(steps.concatList.content).toBe("ffconcat version 1.0\nfile 'piece-0000.mp4'\n");
  });

  it("targets a bitrate instead of CRF when video_bitrate is given; x265 and VP9 get their own options", () => {
    const bitrate = planRender(
      makeBlueprint([{ video_path: "a.mp4", duration: 1 }], { video_bitrate: "2M" }),
      infos({ "a.mp4": {} }),
      song,
    );
    const args = planCommands(bitrate, FILES)[0]!;
    expect(args).toEqual(expect.arrayContaining(["-b:v", "2M"]));
    expect(args).not.toContain("-crf");

    const hevc = planRender(
      makeBlueprint([{ video_path: "a.mp4", duration: 1 }], { video_codec: "libx265" }),
      infos({ "a.mp4": {} }),
      song,
    );
    const hevcCommands = planCommands(hevc, FILES);
    expect(hevcCommands[0]).toEqual(expect.arrayContaining(["-c:v", "libx265", "-tag:v", "hvc1"]));
    expect(hevcCommands.at(-1)).toEqual(expect.arrayContaining(["-tag:v", "hvc1"]));

    const webm = planRender(
      makeBlueprint([{ video_path: "a.mp4", duration: 1 }], {
        output_format: "webm",
        video_codec: "libvpx-vp9",
        audio_codec: "libopus",
      }),
      infos({ "a.mp4": {} }),
      song,
    );
    const webmCommands = planCommands(webm, { ...FILES, output: "/out/out.webm" });
    expect(webmCommands[0]).toEqual(
      expect.arrayContaining(["-c:v", "libvpx-vp9", "-b:v", "0", "-f", "webm"]),
    );
    expect(webmCommands[1]).toEqual(expect.arrayContaining(["-c:a", "libopus"]));
    expect(webmCommands.at(-1)).not.toContain("-movflags");
  });

  it("labels steps with storage keys, never local paths, and budgets watchdogs by work", () => {
    const steps = planSteps(plan, FILES);
    for (const step of [...steps.pieces, steps.final]) {
      expect(step.label).not.toMatch(/\/in\/|\/work|\/out\//);
      expect(step.timeoutMs).toBeGreaterThanOrEqual(30_000);
    }
    expect(steps.pieces[0]!.label).toBe("rendering move 1 (move_1) from a.mp4");
    expect(steps.pieces[1]!.label).toBe("rendering the crossfade into move 2 (move_2) (b.mp4)");
    const long = planSteps(
      planRender(
        makeBlueprint([{ video_path: "a.mp4", duration: 60 }]),
        infos({ "a.mp4": { duration: 60 } }),
        song,
      ),
      FILES,
    );
    expect(long.pieces[0]!.timeoutMs).toBeGreaterThan(steps.pieces[0]!.timeoutMs);
  });
});

describe("module boundaries", () => {
  it("keeps the timeline, the FFmpeg arguments and the probe parsing pure (no fs, child_process, fluent-ffmpeg, log)", () => {
    const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src/media");
    for (const name of [
      "plan.ts",
      "filters.ts",
      "containers.ts",
      "commands.ts",
      "steps.ts",
      "media-info.ts",
    ]) {
      const source = readFileSync(path.join(dir, name), "utf8");
      // Runtime imports only: `import type` is erased.
      const imports = [...source.matchAll(/^import (?!type )[^;]*? from "([^"]+)"/gms)].map((m) => m[1]);
      for (const spec of imports) {
        expect(spec).toMatch(/^\.\.?\//);
        expect(spec).not.toMatch(/log\.js$|probe\.js$|ffmpeg\.js$|render\.js$|verify\.js$/);
      }
    }
  });

  it("the timeline imports not even a type from a module that does I/O", () => {
    const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src/media");
    const source = readFileSync(path.join(dir, "plan.ts"), "utf8");
    const imports = [...source.matchAll(/^import [^;]*? from "([^"]+)"/gms)].map((m) => m[1]);
    expect(imports.length).toBeGreaterThan(0);
    for (const spec of imports)
      expect(spec).not.toMatch(/probe\.js$|ffmpeg\.js$|render\.js$|verify\.js$|log\.js$/);
  });

  it("these pure tests and their blueprint builder load no renderer, probe, FFmpeg runner or fixture generator", () => {
    const here = fileURLToPath(import.meta.url);
    for (const file of [here, path.resolve(path.dirname(here), "../helpers/blueprints.ts")]) {
      const source = readFileSync(file, "utf8");
      const imports = [...source.matchAll(/^import (?!type )[^;]*? from "([^"]+)"/gms)].map((m) => m[1]);
      for (const spec of imports)
        expect(spec, file).not.toMatch(
          /probe\.js$|ffmpeg\.js$|render\.js$|verify\.js$|log\.js$|\/helpers\.js$|fixtures\.js$|measure\.js$|child_process/,
        );
    }
  });

  it("starts FFmpeg from ffmpeg.ts only, without fluent-ffmpeg (docs/decisions/process-runner.md)", () => {
    const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src");
    for (const name of readdirSync(src, { recursive: true, encoding: "utf8" })) {
      if (!name.endsWith(".ts")) continue;
      const source = readFileSync(path.join(src, name), "utf8");
      expect(source, name).not.toContain('from "fluent-ffmpeg"');
      // Child processes: FFmpeg/ffprobe in media/ffmpeg.ts, the embedded PostgreSQL in tasks/embedded.ts,
      // and `warm-cache --shards N`, which runs N copies of this CLI (no FFmpeg) in job/warm-cache-cli.ts.
      if (/from "node:child_process"/.test(source))
        expect([
          path.join("media", "ffmpeg.ts"),
          path.join("tasks", "embedded.ts"),
          path.join("job", "warm-cache-cli.ts"),
        ]).toContain(name);
    }
  });
});
