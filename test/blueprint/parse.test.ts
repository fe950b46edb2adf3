import { describe, expect, it } from "vitest";
import { parseBlueprint, validateBlueprint } from "../../src/blueprint/parse.js";
import type { Blueprint, BlueprintDefaults, BlueprintIssue } from "../../src/blueprint/types.js";
import {
  BUCKET,
  blueprintDocument,
  DEFAULTS,
  GCS_DEFAULTS,
  SEED_MANUAL_EXAMPLE,
  SEED_STRUCTURE_EXAMPLE,
  SPEC_EXAMPLE,
  type TestBlueprint,
} from "../helpers/blueprints.js";

function valid(doc: unknown, defaults: BlueprintDefaults = DEFAULTS): Blueprint {
  const result = validateBlueprint(doc, defaults);
  if (!result.ok)
    throw new Error(`expected a valid blueprint, got:\n${JSON.stringify(result.issues, null, 2)}`);
  return result.blueprint;
}

function invalid(doc: unknown, defaults: BlueprintDefaults = DEFAULTS): BlueprintIssue[] {
  const result = validateBlueprint(doc, defaults);
  if (result.ok) throw new Error("expected problems, the blueprint was accepted");
  return result.issues;
}

function mutated(change: (bp: TestBlueprint) => void, durations?: number[]): TestBlueprint {
  const bp = blueprintDocument(durations);
  change(bp);
  return bp;
}

const field = (name: string, value: unknown) =>
  mutated((bp) => {
    bp[name] = value;
  });
const moveField = (index: number, name: string, value: unknown, durations?: number[]) =>
  mutated((bp) => {
    bp.moves[index]![name] = value;
  }, durations);
const outputField = (name: string, value: unknown) =>
  mutated((bp) => {
    bp.output_config[name] = value;
  });

describe("validateBlueprint: valid blueprints", () => {
  it("accepts the SPEC §3 example and both seed README examples", () => {
    for (const text of [SPEC_EXAMPLE, SEED_MANUAL_EXAMPLE, SEED_STRUCTURE_EXAMPLE]) {
      const result = parseBlueprint(text, DEFAULTS);
      expect(result.ok ? [] : result.issues).toEqual([]);
    }
  });

  it("returns the seed example normalised, every default applied (local mode: data/ stripped)", () => {
    const result = parseBlueprint(SEED_MANUAL_EXAMPLE, DEFAULTS);
    expect(result).toEqual({
      ok: true,
      blueprint: {
        task_id: "test-123",
        audio_path: "songs/test.mp3",
        moves: [
          {
            clip_id: "move_1",
            video_path: "Bachata_steps/basic_steps/basic_1.mp4",
            start_time: 0,
            duration: 8,
            transition_type: "cut",
            trim_start: 0,
            trim_end: 0,
            volume_adjustment: 1,
          },
          {
            clip_id: "move_2",
            video_path: "Bachata_steps/body_roll/body_roll_1.mp4",
            start_time: 8,
            duration: 8,
            transition_type: "crossfade",
            trim_start: 0,
            trim_end: 0,
            volume_adjustment: 1,
          },
        ],
        total_duration: 16,
        output_config: {
          output_path: "output/test_choreography.mp4",
          output_format: "mp4",
          video_codec: "libx264",
          audio_codec: "aac",
          audio_bitrate: "128k",
          crf: 23,
          preset: "veryfast",
          frame_rate: 30,
          transition_duration: 0.5,
          fade_duration: 0,
          normalize_audio: false,
        },
        warnings: [],
      },
    });
  });

  it("keeps the informational fields of the SPEC example", () => {
    const bp = (parseBlueprint(SPEC_EXAMPLE, DEFAULTS) as { ok: true; blueprint: Blueprint }).blueprint;
    expect(bp.audio_tempo).toBe(129.2);
    expect(bp.difficulty_level).toBe("intermediate");
    expect(bp.generation_parameters).toEqual({ energy_level: "medium", style: "sensual", user_id: 1 });
    expect(bp.moves[0]!.original_duration).toBe(8);
    expect(bp.output_config).toMatchObject({
      video_bitrate: "2M",
      fade_duration: 0.3,
      normalize_audio: true,
    });
  });

  it("defaults clip_id to move_<n>, 1-based", () => {
    const doc = blueprintDocument([1, 1, 1]);
    for (const move of doc.moves) delete move["clip_id"];
    const bp = valid(doc);
    expect(bp.moves.map((move) => move.clip_id)).toEqual(["move_1", "move_2", "move_3"]);
  });

  it("accepts and drops unknown fields everywhere", () => {
    const bp = valid(
      mutated((doc) => {
        doc["future_field"] = { anything: [1, 2] };
        doc.moves[0]!["camera_angle"] = "front";
        doc.output_config["hdr"] = true;
      }),
    );
    expect(bp).not.toHaveProperty("future_field");
    expect(bp.moves[0]).not.toHaveProperty("camera_angle");
    expect(bp.output_config).not.toHaveProperty("hdr");
  });

  it("lets output_config override the environment defaults", () => {
    const bp = valid(
      mutated((doc) => {
        doc.output_config = {
          output_path: "out/x.mov",
          video_codec: "libx265",
          audio_codec: "libmp3lame",
          audio_bitrate: "192k",
          video_bitrate: "4.5M",
          crf: 18,
          preset: "slow",
          frame_rate: 24,
          resolution: "1280x720",
          transition_duration: 0.25,
          fade_duration: 1,
          normalize_audio: true,
        };
      }),
    );
    expect(bp.output_config).toEqual({
      output_path: "out/x.mov",
      output_format: "mov",
      video_codec: "libx265",
      audio_codec: "libmp3lame",
      audio_bitrate: "192k",
      video_bitrate: "4.5M",
      crf: 18,
      preset: "slow",
      frame_rate: 24,
      resolution: { width: 1280, height: 720 },
      transition_duration: 0.25,
      fade_duration: 1,
      normalize_audio: true,
    });
  });

  it("takes the format from the output_path extension (any case) when output_format is omitted", () => {
    expect(valid(outputField("output_path", "out/X.MKV")).output_config.output_format).toBe("mkv");
    const webmDefaults: BlueprintDefaults = { ...DEFAULTS, output_format: "webm" };
    expect(valid(blueprintDocument(), webmDefaults).output_config.output_format).toBe("mp4");
  });

  it("chooses the natural codecs of webm when the environment's don't fit", () => {
    const bp = valid(outputField("output_path", "out/x.webm"));
    expect(bp.output_config).toMatchObject({
      output_format: "webm",
      video_codec: "libvpx-vp9",
      audio_codec: "libopus",
    });
  });

  it("chooses libx264/aac for mp4 when the environment defaults are vp9/opus, clamping its CRF", () => {
    const vp9: BlueprintDefaults = {
      ...DEFAULTS,
      video_codec: "libvpx-vp9",
      audio_codec: "libopus",
      crf: 60,
    };
    expect(valid(blueprintDocument(), vp9).output_config).toMatchObject({
      video_codec: "libx264",
      audio_codec: "aac",
      crf: 51,
    });
    expect(valid(outputField("output_path", "o.webm"), vp9).output_config.crf).toBe(60);
  });

  it("accepts any codec pair in mkv, and CRF up to 63 for vp9", () => {
    const bp = valid(
      mutated((doc) => {
        doc.output_config = { output_path: "o.mkv", video_codec: "libvpx-vp9", audio_codec: "aac", crf: 63 };
      }),
    );
    expect(bp.output_config).toMatchObject({ video_codec: "libvpx-vp9", audio_codec: "aac", crf: 63 });
  });

  it("accepts a move of exactly 2 frames, and 0.05 s at 60 fps", () => {
    valid(blueprintDocument([8, 2 / 30]));
    valid(mutated((doc) => (doc.output_config["frame_rate"] = 60), [8, 0.05]));
  });

  it("tolerates starts within half a frame and a total within one frame", () => {
    valid(
      mutated((doc) => {
        doc.moves[0]!["start_time"] = 0.01;
        doc.moves[1]!["start_time"] = 8.01;
        doc["total_duration"] = 16.03;
      }),
    );
  });

  it("sums floating-point durations without false gaps", () => {
    valid(blueprintDocument(Array.from({ length: 300 }, () => 0.1)));
  });

  it("computes total_duration when it is omitted, and accepts 500 moves and an hour", () => {
    const bp = valid(mutated((doc) => delete doc["total_duration"], [1.5, 2.5]));
    expect(bp.total_duration).toBe(4);
    valid(blueprintDocument(Array.from({ length: 500 }, () => 7.2)));
  });

  it("accepts fractional frame rates", () => {
    expect(valid(outputField("frame_rate", 29.97)).output_config.frame_rate).toBe(29.97);
  });

  it("accepts names with dots such as clip..v2.mp4", () => {
    const bp = valid(moveField(0, "video_path", "clips/clip..v2.mp4"));
    expect(bp.moves[0]!.video_path).toBe("clips/clip..v2.mp4");
  });

  it("accepts gs://<configured bucket>/key in GCS mode and stores the key", () => {
    const bp = valid(
      mutated((doc) => {
        doc["audio_path"] = `gs://${BUCKET}/songs/a.mp3`;
        doc.moves[0]!["video_path"] = `gs://${BUCKET}/clips/a.mp4`;
        doc.output_config["output_path"] = `gs://${BUCKET}/out/a.mp4`;
      }),
      GCS_DEFAULTS,
    );
    expect([bp.audio_path, bp.moves[0]!.video_path, bp.output_config.output_path]).toEqual([
      "songs/a.mp3",
      "clips/a.mp4",
      "out/a.mp4",
    ]);
  });

  it("strips a leading data/ from every key in local mode only; GCS object names are verbatim", () => {
    const local = valid(JSON.parse(SEED_MANUAL_EXAMPLE));
    expect([local.audio_path, local.moves[0]!.video_path, local.output_config.output_path]).toEqual([
      "songs/test.mp3",
      "Bachata_steps/basic_steps/basic_1.mp4",
      "output/test_choreography.mp4",
    ]);
    const gcs = valid(JSON.parse(SEED_MANUAL_EXAMPLE), GCS_DEFAULTS);
    expect([gcs.audio_path, gcs.output_config.output_path]).toEqual([
      "data/songs/test.mp3",
      "data/output/test_choreography.mp4",
    ]);
    // data/x.mp4 and x.mp4 are one file locally: as output and input they clash.
    const clash = mutated((doc) => {
      doc.moves[0]!["video_path"] = "data/output/choreography.mp4";
    });
    expect(invalid(clash).map((problem) => problem.path)).toEqual(["output_config.output_path"]);
  });

  it("passes a per-move transition_duration through", () => {
    const bp = valid(moveField(1, "transition_duration", 1.25));
    expect(bp.moves[1]!.transition_duration).toBe(1.25);
    expect(bp.moves[0]).not.toHaveProperty("transition_duration");
  });
});

interface BadCase {
  name: string;
  doc: unknown;
  defaults?: BlueprintDefaults;
  /** Every issue expected, in order: path, and a fragment of the message. */
  issues: [path: string, message: string][];
}

const BAD_CASES: BadCase[] = [
  // Required fields, with the Python job's messages.
  ...(["task_id", "audio_path", "moves", "output_config"] as const).map(
    (name): BadCase => ({
      name: `missing ${name}`,
      doc: mutated((bp) => delete bp[name]),
      issues: [[name, `Missing required field: ${name}`]],
    }),
  ),
  {
    name: "missing output_path",
    doc: mutated((bp) => delete bp.output_config["output_path"]),
    issues: [["output_config.output_path", "output_config missing required field: output_path"]],
  },
  {
    name: "empty moves",
    doc: mutated((bp) => (bp.moves = [])),
    issues: [["moves", "moves array cannot be empty"]],
  },
  {
    name: "501 moves",
    doc: blueprintDocument(Array.from({ length: 501 }, () => 1)),
    issues: [["moves", "expected at most 500 moves, found 501"]],
  },
  {
    name: "move is a string",
    doc: mutated((bp) => ((bp.moves as unknown[])[1] = "clips/a.mp4")),
    issues: [["moves[1]", "expected an object, found a string"]],
  },
  {
    name: "move without video_path",
    doc: mutated((bp) => delete bp.moves[1]!["video_path"]),
    issues: [["moves[1].video_path", "Missing required field: video_path"]],
  },
  {
    name: "move without start_time",
    doc: mutated((bp) => delete bp.moves[1]!["start_time"]),
    issues: [["moves[1].start_time", "Missing required field: start_time"]],
  },
  {
    name: "move without duration",
    doc: mutated((bp) => delete bp.moves[1]!["duration"]),
    issues: [["moves[1].duration", "Missing required field: duration"]],
  },
  // task_id
  { name: "blank task_id", doc: field("task_id", "  "), issues: [["task_id", "non-blank"]] },
  {
    name: "task_id of 37 characters (the column is varchar(36))",
    doc: field("task_id", "x".repeat(37)),
    issues: [["task_id", "expected at most 36 characters, found 37 characters"]],
  },
  {
    name: "task_id with a NUL",
    doc: field("task_id", "abc\u0000def"),
    issues: [["task_id", "no control characters"]],
  },
  { name: "numeric task_id", doc: field("task_id", 5), issues: [["task_id", "expected a string"]] },
  // Numbers: types.
  {
    name: "string start_time",
    doc: moveField(1, "start_time", "8"),
    issues: [["moves[1].start_time", 'expected a finite number, found a string "8"']],
  },
  {
    name: "string duration",
    doc: moveField(0, "duration", "8"),
    issues: [["moves[0].duration", 'expected a finite number, found a string "8"']],
  },
  {
    name: "boolean duration",
    doc: moveField(1, "duration", true),
    issues: [["moves[1].duration", "found a boolean true"]],
  },
  {
    name: "null duration",
    doc: moveField(1, "duration", null),
    issues: [["moves[1].duration", "found null"]],
  },
  {
    name: "NaN duration",
    doc: moveField(1, "duration", Number.NaN),
    issues: [["moves[1].duration", "found NaN"]],
  },
  {
    name: "Infinity start_time",
    doc: moveField(1, "start_time", Number.POSITIVE_INFINITY),
    issues: [["moves[1].start_time", "found Infinity"]],
  },
  { name: "array duration", doc: moveField(1, "duration", [8]), issues: [["moves[1].duration", "an array"]] },
  // Numbers: ranges.
  {
    name: "negative start_time of the first move",
    doc: moveField(0, "start_time", -1),
    issues: [["moves[0].start_time", "expected a number >= 0, found -1"]],
  },
  {
    name: "negative duration",
    doc: moveField(1, "duration", -1),
    issues: [["moves[1].duration", "expected a number > 0, found -1"]],
  },
  {
    name: "zero duration",
    doc: moveField(1, "duration", 0),
    issues: [["moves[1].duration", "expected a number > 0, found 0"]],
  },
  {
    name: "a single move shorter than 2 frames (nothing to absorb it)",
    doc: blueprintDocument([0.05]),
    issues: [
      ["moves[0].duration", "expected at least 2 frames at 30 fps (0.066667 s), found 0.05 (1.5 frames)"],
    ],
  },
  {
    name: "a timeline shorter than 2 frames",
    doc: blueprintDocument([0.02, 0.02]),
    issues: [["moves", "expected a timeline of at least 2 frames at 30 fps"]],
  },
  // Tiling.
  {
    name: "a gap",
    doc: moveField(1, "start_time", 9),
    issues: [
      [
        "moves[1].start_time",
        'move "move_2" must start where the previous move ends: expected 8 (where moves[0] ends), found 9 (a 1 s gap)',
      ],
      ["total_duration", "expected 17 (the end of the last move, within 1 frame), found 16"],
    ],
  },
  {
    name: "an overlap",
    doc: moveField(1, "start_time", 7.5),
    issues: [
      ["moves[1].start_time", "expected 8 (where moves[0] ends), found 7.5 (a 0.5 s overlap)"],
      ["total_duration", "expected 15.5"],
    ],
  },
  {
    name: "an offset of half a frame",
    doc: mutated((bp) => {
      bp.moves[1]!["start_time"] = 8 + 0.5 / 30;
      bp["total_duration"] = 16 + 0.5 / 30;
    }),
    issues: [["moves[1].start_time", "gap"]],
  },
  {
    name: "a first move that does not start at 0",
    doc: mutated((bp) => {
      bp.moves[0]!["start_time"] = 1;
      bp.moves[1]!["start_time"] = 9;
      bp["total_duration"] = 17;
    }),
    issues: [
      [
        "moves[0].start_time",
        'move "move_1" must start at 0: expected 0 (the start of the timeline), found 1',
      ],
    ],
  },
  {
    name: "a gap named by the default clip id",
    doc: mutated((bp) => {
      delete bp.moves[1]!["clip_id"];
      bp.moves[1]!["start_time"] = 10;
      bp["total_duration"] = 18;
    }),
    issues: [["moves[1].start_time", 'move "move_2" must start']],
  },
  {
    name: "total_duration more than a frame off",
    doc: field("total_duration", 16.1),
    issues: [["total_duration", "expected 16 (the end of the last move, within 1 frame), found 16.1"]],
  },
  { name: "zero total_duration", doc: field("total_duration", 0), issues: [["total_duration", "> 0"]] },
  {
    name: "a timeline longer than an hour",
    doc: blueprintDocument([1800, 1800.5]),
    issues: [["moves", "expected a timeline of at most 3600 s (1 hour), found 3600.5 s"]],
  },
  // Transitions and the other move fields.
  {
    name: "unknown transition",
    doc: moveField(1, "transition_type", "wipe"),
    issues: [
      [
        "moves[1].transition_type",
        'expected one of cut, crossfade, fade_black, fade_white, wipe_left, wipe_right, zoom_in, zoom_out, rotate, found "wipe"',
      ],
    ],
  },
  {
    name: "numeric transition",
    doc: moveField(1, "transition_type", 1),
    issues: [["moves[1].transition_type", "found a number 1"]],
  },
  {
    name: "zero per-move transition_duration",
    doc: moveField(1, "transition_duration", 0),
    issues: [["moves[1].transition_duration", "expected a number > 0, found 0"]],
  },
  {
    name: "string per-move transition_duration",
    doc: moveField(1, "transition_duration", "0.5"),
    issues: [["moves[1].transition_duration", "finite number"]],
  },
  {
    name: "negative trim_start",
    doc: moveField(0, "trim_start", -0.1),
    issues: [["moves[0].trim_start", ">= 0"]],
  },
  { name: "negative trim_end", doc: moveField(0, "trim_end", -1), issues: [["moves[0].trim_end", ">= 0"]] },
  {
    name: "volume above 1",
    doc: moveField(0, "volume_adjustment", 1.5),
    issues: [["moves[0].volume_adjustment", "expected a number <= 1, found 1.5"]],
  },
  {
    name: "negative volume",
    doc: moveField(0, "volume_adjustment", -0.1),
    issues: [["moves[0].volume_adjustment", ">= 0"]],
  },
  { name: "blank clip_id", doc: moveField(0, "clip_id", ""), issues: [["moves[0].clip_id", "non-blank"]] },
  {
    name: "zero original_duration",
    doc: moveField(0, "original_duration", 0),
    issues: [["moves[0].original_duration", "> 0"]],
  },
  // Informational fields.
  { name: "negative audio_tempo", doc: field("audio_tempo", -5), issues: [["audio_tempo", "> 0"]] },
  {
    name: "unknown difficulty",
    doc: field("difficulty_level", "expert"),
    issues: [["difficulty_level", "one of beginner, intermediate, advanced"]],
  },
  {
    name: "numeric generation_timestamp",
    doc: field("generation_timestamp", 1700000000),
    issues: [["generation_timestamp", "expected a string"]],
  },
  {
    name: "string generation_parameters",
    doc: field("generation_parameters", "medium"),
    issues: [["generation_parameters", "expected an object"]],
  },
  // output_config.
  {
    name: "output_config not an object",
    doc: field("output_config", "out.mp4"),
    issues: [["output_config", 'expected an object, found a string "out.mp4"']],
  },
  {
    name: "unknown output_format",
    doc: outputField("output_format", "avi"),
    issues: [["output_config.output_format", "one of mp4, mov, mkv, webm"]],
  },
  {
    name: "unknown video codec",
    doc: outputField("video_codec", "h264"),
    issues: [["output_config.video_codec", "one of libx264, libx265, libvpx-vp9"]],
  },
  {
    name: "unknown audio codec",
    doc: outputField("audio_codec", "mp3"),
    issues: [["output_config.audio_codec", 'found "mp3"']],
  },
  {
    name: "bitrate with a space",
    doc: outputField("video_bitrate", "2 M"),
    issues: [
      ["output_config.video_bitrate", 'expected a bitrate like 2M (digits, optional k or M), found "2 M"'],
    ],
  },
  {
    name: "zero bitrate",
    doc: outputField("audio_bitrate", "0k"),
    issues: [["output_config.audio_bitrate", "0k"]],
  },
  {
    name: "numeric bitrate",
    doc: outputField("audio_bitrate", 128000),
    issues: [["output_config.audio_bitrate", "expected a string"]],
  },
  {
    name: "CRF 52 with libx264",
    doc: outputField("crf", 52),
    issues: [["output_config.crf", "expected an integer from 0 to 51 for libx264, found 52"]],
  },
  {
    name: "CRF 64 with vp9",
    doc: field("output_config", { output_path: "o.webm", crf: 64 }),
    issues: [["output_config.crf", "expected an integer from 0 to 63 for libvpx-vp9, found 64"]],
  },
  { name: "negative CRF", doc: outputField("crf", -1), issues: [["output_config.crf", ">= 0"]] },
  { name: "fractional CRF", doc: outputField("crf", 22.5), issues: [["output_config.crf", "an integer"]] },
  {
    name: "unknown preset",
    doc: outputField("preset", "fastest"),
    issues: [["output_config.preset", "one of ultrafast"]],
  },
  { name: "frame rate 0", doc: outputField("frame_rate", 0), issues: [["output_config.frame_rate", ">= 1"]] },
  {
    name: "frame rate 121",
    doc: outputField("frame_rate", 121),
    issues: [["output_config.frame_rate", "<= 120"]],
  },
  {
    name: "string frame rate",
    doc: outputField("frame_rate", "30"),
    issues: [["output_config.frame_rate", 'found a string "30"']],
  },
  {
    name: "odd resolution",
    doc: outputField("resolution", "1280x721"),
    issues: [
      ["output_config.resolution", 'expected even width and height, each at most 3840, found "1280x721"'],
    ],
  },
  {
    name: "resolution above 3840",
    doc: outputField("resolution", "4096x2160"),
    issues: [["output_config.resolution", "at most 3840"]],
  },
  {
    name: "malformed resolution",
    doc: outputField("resolution", "1280*720"),
    issues: [["output_config.resolution", 'expected a size like "1280x720", found "1280*720"']],
  },
  {
    name: "negative fade_duration",
    doc: outputField("fade_duration", -1),
    issues: [["output_config.fade_duration", ">= 0"]],
  },
  {
    name: "zero transition_duration",
    doc: outputField("transition_duration", 0),
    issues: [["output_config.transition_duration", "> 0"]],
  },
  {
    name: "string normalize_audio",
    doc: outputField("normalize_audio", "yes"),
    issues: [["output_config.normalize_audio", "expected a boolean"]],
  },
  // Format ↔ extension ↔ codecs.
  {
    name: "format not matching the extension",
    doc: field("output_config", { output_path: "out/x.webm", output_format: "mp4" }),
    issues: [
      ["output_config.output_format", 'expected "webm" to match the output_path extension, found "mp4"'],
    ],
  },
  {
    name: "an unknown extension",
    doc: outputField("output_path", "out/x.avi"),
    issues: [
      [
        "output_config.output_path",
        'a video file name ending in .mp4, .mov, .mkv or .webm, found "out/x.avi"',
      ],
    ],
  },
  {
    name: "no extension with a format",
    doc: field("output_config", { output_path: "out/x", output_format: "mov" }),
    issues: [["output_config.output_path", "a file name ending in .mov (output_format mov)"]],
  },
  {
    name: "webm with H.264 and AAC",
    doc: field("output_config", { output_path: "x.webm", video_codec: "libx264", audio_codec: "aac" }),
    issues: [
      ["output_config.video_codec", 'expected libvpx-vp9 for webm output, found "libx264"'],
      ["output_config.audio_codec", 'expected libopus for webm output, found "aac"'],
    ],
  },
  {
    name: "mp4 with vp9 and opus",
    doc: field("output_config", { output_path: "x.mp4", video_codec: "libvpx-vp9", audio_codec: "libopus" }),
    issues: [
      ["output_config.video_codec", "expected libx264 or libx265 for mp4 output"],
      ["output_config.audio_codec", "expected aac or libmp3lame for mp4 output"],
    ],
  },
  {
    name: "output equal to a clip",
    doc: outputField("output_path", "clips/clip_2.mp4"),
    issues: [["output_config.output_path", 'found "clips/clip_2.mp4", the same as moves[1].video_path']],
  },
  {
    name: "output equal to a clip once the bucket prefix is removed",
    doc: outputField("output_path", `gs://${BUCKET}/clips/clip_1.mp4`),
    defaults: GCS_DEFAULTS,
    issues: [["output_config.output_path", "the same as moves[0].video_path"]],
  },
];

const PATH_ATTACKS: [key: string, reason: string][] = [
  ["", "an empty path"],
  ["../secret.mp4", "a path with a '..' segment"],
  ["clips/../../etc/passwd.mp4", "a path with a '..' segment"],
  ["clips/..", "a path with a '..' segment"],
  ["/etc/x.mp4", "an absolute path"],
  ["C:\\videos\\x.mp4", "a path with backslashes"],
  ["C:/videos/x.mp4", "an absolute path"],
  ["clips\\x.mp4", "a path with backslashes"],
  ["clips/x\u0000.mp4", "a path with control characters"],
  ["clips/x\n.mp4", "a path with control characters"],
  ["file:///etc/x.mp4", "a file: URL"],
  ["http://example.com/x.mp4", "a http: URL"],
  ["gs://other-bucket/x.mp4", "a gs:// URL"],
  ["./x.mp4", "a path with a '.' segment"],
  ["clips//x.mp4", "a path with an empty segment"],
];

const PATH_FIELDS: [path: string, place: (bp: TestBlueprint, key: string) => void][] = [
  ["audio_path", (bp, key) => (bp["audio_path"] = key)],
  ["moves[1].video_path", (bp, key) => (bp.moves[1]!["video_path"] = key)],
  ["output_config.output_path", (bp, key) => (bp.output_config["output_path"] = key)],
];

for (const [key, reason] of PATH_ATTACKS) {
  for (const [path, place] of PATH_FIELDS) {
    BAD_CASES.push({
      name: `${path} = ${JSON.stringify(key)}`,
      doc: mutated((bp) => place(bp, key)),
      defaults: GCS_DEFAULTS,
      issues: [[path, `expected a relative storage path, found ${reason}`]],
    });
  }
}
BAD_CASES.push({
  name: "gs://<bucket>/key in local mode",
  doc: field("audio_path", `gs://${BUCKET}/songs/a.mp3`),
  issues: [["audio_path", "found a gs:// URL (storage is local, not GCS)"]],
});

describe("validateBlueprint: one bad case per rule", () => {
  it.each(BAD_CASES)("$name", ({ doc, defaults, issues }) => {
    const found = invalid(doc, defaults);
    expect(found.map((problem) => problem.path)).toEqual(issues.map(([path]) => path));
    found.forEach((problem, index) => {
      expect(problem.message).toContain(issues[index]![1]);
    });
  });

  it("reports every problem at once, in document order", () => {
    const doc = blueprintDocument([8, 8, 8, 0.05]);
    delete doc["audio_path"];
    doc["task_id"] = "";
    doc.moves[0]!["duration"] = "8";
    doc.moves[1]!["video_path"] = "../x.mp4";
    doc.moves[1]!["transition_type"] = "wipe";
    // A gap before moves[2], so an overlap after it (moves[3] starts at 24, moves[2] now ends at 25).
    doc.moves[2]!["start_time"] = 17;
    doc.moves[3]!["volume_adjustment"] = null;
    // (Its 0.05 s, 1.5 frames, is absorbed into moves[2], not an error.)
    doc.moves[3]!["transition_duration"] = -1;
    doc["total_duration"] = 30;
    doc.output_config = { output_path: "/abs/out.mp4", crf: 99, video_codec: "libvpx-vp9", frame_rate: "30" };
    const issues = invalid(doc);
    expect(issues.map((problem) => problem.path)).toEqual([
      "task_id",
      "audio_path",
      "moves[0].duration",
      "moves[1].video_path",
      "moves[1].transition_type",
      "moves[2].start_time",
      "moves[3].start_time",
      "moves[3].transition_duration",
      "moves[3].volume_adjustment",
      "total_duration",
      "output_config.output_path",
      "output_config.video_codec",
      "output_config.crf",
      "output_config.frame_rate",
    ]);
    for (const problem of issues) {
      expect(problem.message.length).toBeGreaterThan(0);
    }
  });

  it("gives expected and found separately", () => {
    expect(invalid(moveField(1, "duration", -1))).toEqual([
      {
        path: "moves[1].duration",
        message: "expected a number > 0, found -1",
        expected: "a number > 0",
        found: "-1",
      },
    ]);
  });
});

describe("parseBlueprint: the text", () => {
  it("reports invalid JSON with the parser's position", () => {
    const result = parseBlueprint("{not json", DEFAULTS);
    expect(result).toMatchObject({ ok: false, issues: [{ path: "" }] });
    const [problem] = (result as { issues: BlueprintIssue[] }).issues;
    expect(problem!.message).toMatch(/^The blueprint is not valid JSON: .*position 1/);
  });

  it("reports empty text as invalid JSON", () => {
    expect(parseBlueprint("", DEFAULTS)).toMatchObject({
      ok: false,
      issues: [{ path: "", message: expect.stringContaining("not valid JSON") }],
    });
  });

  it.each([
    ["[]", "found an empty array"],
    ["[1,2]", "found an array of 2"],
    ['"blueprint"', 'found a string "blueprint"'],
    ["42", "found a number 42"],
    ["null", "found null"],
    ["true", "found a boolean true"],
  ])("rejects %s clearly", (text, found) => {
    expect(parseBlueprint(text, DEFAULTS)).toEqual({
      ok: false,
      issues: [
        {
          path: "",
          message: `The blueprint must be a JSON object, ${found}`,
          expected: "a JSON object",
          found: found.replace("found ", ""),
        },
      ],
    });
  });

  it("rejects text above 1 MiB, counted in UTF-8 bytes", () => {
    const padded = JSON.stringify(blueprintDocument()).replace("{", `{${" ".repeat(1024 * 1024)}`);
    expect(parseBlueprint(padded, DEFAULTS)).toMatchObject({
      ok: false,
      issues: [{ path: "", message: expect.stringContaining("larger than 1 MiB") }],
    });
    // 400 000 characters, 1.2 MB of UTF-8.
    const wide = JSON.stringify({ ...blueprintDocument(), note: "€".repeat(400_000) });
    expect(wide.length).toBeLessThan(1024 * 1024);
    expect(parseBlueprint(wide, DEFAULTS)).toMatchObject({ ok: false, issues: [{ path: "" }] });
  });

  it("accepts a large blueprint below 1 MiB and a leading byte-order mark", () => {
    const text = JSON.stringify({ ...blueprintDocument(), note: "x".repeat(1000 * 1000) });
    expect(parseBlueprint(text, DEFAULTS).ok).toBe(true);
    expect(parseBlueprint(`\uFEFF${SEED_MANUAL_EXAMPLE}`, DEFAULTS).ok).toBe(true);
  });

  it("never throws on values JSON cannot produce", () => {
    const hostile = {
      get task_id(): string {
        throw new Error("boom");
      },
    };
    expect(validateBlueprint(hostile, DEFAULTS)).toMatchObject({ ok: false });
    expect(validateBlueprint(undefined, DEFAULTS)).toMatchObject({ ok: false, issues: [{ path: "" }] });
    expect(parseBlueprint(undefined as unknown as string, DEFAULTS)).toMatchObject({ ok: false });
  });
});
