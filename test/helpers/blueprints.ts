/**
 * The one place tests build blueprints: raw documents as the API sends them (for the parser), parsed
 * blueprints with defaults applied (for the planner), and MediaInfo values. Pure: imports types only.
 */
import type { Blueprint, BlueprintDefaults, Move, OutputConfig } from "../../src/blueprint/types.js";
import type { MediaInfo } from "../../src/media/media-info.js";

/** The environment defaults of SPEC §2, local mode. */
export const DEFAULTS: BlueprintDefaults = Object.freeze({
  output_format: "mp4",
  video_codec: "libx264",
  audio_codec: "aac",
  audio_bitrate: "128k",
  crf: 23,
  preset: "veryfast",
  frame_rate: 30,
});

export const BUCKET = "media-bucket";
/** GCS mode with bucket `media-bucket`. */
export const GCS_DEFAULTS: BlueprintDefaults = Object.freeze({ ...DEFAULTS, gcs_bucket: BUCKET });

/** A blueprint document being built or mutated by a test: any field may hold any JSON value. */
export interface TestMove {
  [field: string]: unknown;
}
export interface TestBlueprint {
  [field: string]: unknown;
  moves: TestMove[];
  output_config: Record<string, unknown>;
}

/**
 * Moves placed end to end from 0: each gets `start_time` (unless it sets its own) and the next starts
 * where it ends. Returns the moves and the end of the last one.
 */
function tile<M extends { start_time?: unknown; duration: number }>(
  moves: M[],
): { moves: (Omit<M, "start_time"> & { start_time: number })[]; end: number } {
  let end = 0;
  const placed = moves.map((move) => {
    const start = typeof move.start_time === "number" ? move.start_time : end;
    end = start + move.duration;
    return { ...move, start_time: start };
  });
  return { moves: placed, end };
}

/** A valid blueprint document whose moves (clips/clip_<n>.mp4) tile the timeline with the given durations. */
export function blueprintDocument(durations: number[] = [8, 8]): TestBlueprint {
  const { moves, end } = tile(
    durations.map((duration, index) => ({
      clip_id: `move_${index + 1}`,
      video_path: `clips/clip_${index + 1}.mp4`,
      duration,
      transition_type: index === 0 ? "cut" : "crossfade",
    })),
  );
  return {
    task_id: "0b4c6f1e-7d2a-4c55-9a0e-3f1d2c4b5a69",
    audio_path: "songs/Amor.mp3",
    moves: moves.map(({ clip_id, video_path, start_time, duration, transition_type }) => ({
      clip_id,
      video_path,
      start_time,
      duration,
      transition_type,
    })),
    total_duration: end,
    output_config: { output_path: "output/choreography.mp4" },
  };
}

/** A move of a CLI run's blueprint: which clip, for how long, entered how (default `cut`). */
export interface MoveSpec {
  clip: string;
  duration: number;
  transition?: string;
}

export interface RunDocument {
  [field: string]: unknown;
  task_id: string;
  audio_path: string;
  moves: {
    clip_id: string;
    video_path: string;
    start_time: number;
    duration: number;
    transition_type: string;
  }[];
  total_duration: number;
  output_config: Record<string, unknown>;
}

/**
 * A blueprint document for a run of the CLI on a storage root holding `songs/song.m4a` and the clips:
 * the moves tile from 0, each `clip` a storage key. `roundStarts`: start times and the total rounded to
 * the millisecond, as the API writes them.
 */
export function runDocument(
  moves: MoveSpec[],
  options: { taskId: string; outputPath: string; transitionDuration: number; roundStarts?: boolean },
  extra: Record<string, unknown> = {},
): RunDocument {
  const round = (t: number) => (options.roundStarts ? Math.round(t * 1000) / 1000 : t);
  const { moves: tiled, end } = tile(moves);
  return {
    task_id: options.taskId,
    audio_path: "songs/song.m4a",
    moves: tiled.map((move, index) => ({
      clip_id: `move_${index + 1}`,
      video_path: move.clip,
      start_time: round(move.start_time),
      duration: move.duration,
      transition_type: move.transition ?? "cut",
    })),
    total_duration: round(end),
    output_config: {
      output_path: options.outputPath,
      frame_rate: 30,
      transition_duration: options.transitionDuration,
    },
    ...extra,
  };
}

export type MoveInput = Pick<Move, "video_path" | "duration"> & Partial<Move>;

/** A parsed blueprint, as the planner gets it: moves tile from 0, defaults applied as the parser would. */
export function makeBlueprint(moves: MoveInput[], output: Partial<OutputConfig> = {}): Blueprint {
  const tiled = tile(
    moves.map(
      (move, i): MoveInput => ({
        clip_id: `move_${i + 1}`,
        transition_type: "cut",
        trim_start: 0,
        trim_end: 0,
        volume_adjustment: 1,
        ...move,
      }),
    ),
  );
  const format = output.output_format ?? "mp4";
  return {
    task_id: "test-task",
    audio_path: "songs/song.m4a",
    moves: tiled.moves as Move[],
    total_duration: tiled.end,
    output_config: {
      output_path: `output/out.${format}`,
      output_format: format,
      video_codec: "libx264",
      audio_codec: "aac",
      audio_bitrate: "96k",
      crf: 23,
      preset: "ultrafast",
      frame_rate: 30,
      transition_duration: 0.5,
      fade_duration: 0,
      normalize_audio: false,
      ...output,
    },
    warnings: [],
  };
}

/** A MediaInfo for planner tests (no FFmpeg). */
export function fakeInfo(overrides: Partial<MediaInfo> = {}): MediaInfo {
  return {
    demuxer: "mov",
    duration: 10,
    hasVideo: true,
    hasAudio: false,
    width: 1280,
    height: 720,
    sar: 1,
    rotation: 0,
    displayWidth: 1280,
    displayHeight: 720,
    fps: 30,
    variableFrameRate: false,
    videoCodec: "h264",
    ...overrides,
  };
}

/** The example of SPEC §3, verbatim. */
export const SPEC_EXAMPLE = `{
  "task_id": "0b4c…-uuid",
  "audio_path": "songs/Amor.mp3",
  "audio_tempo": 129.2,
  "moves": [
    {"clip_id": "move_1", "video_path": "Bachata_steps/basic_steps/basic_1.mp4",
     "start_time": 0.0, "duration": 8.0, "transition_type": "cut",
     "original_duration": 8.0, "trim_start": 0.0, "trim_end": 0.0, "volume_adjustment": 1.0},
    {"clip_id": "move_2", "video_path": "Bachata_steps/body_roll/body_roll_1.mp4",
     "start_time": 8.0, "duration": 8.0, "transition_type": "crossfade"}
  ],
  "total_duration": 16.0,
  "difficulty_level": "intermediate",
  "generation_timestamp": "2025-11-09T12:34:56Z",
  "generation_parameters": {"energy_level": "medium", "style": "sensual", "user_id": 1},
  "output_config": {
    "output_path": "output/choreography_0b4c….mp4",
    "output_format": "mp4", "video_codec": "libx264", "audio_codec": "aac",
    "video_bitrate": "2M", "audio_bitrate": "128k", "frame_rate": 30,
    "transition_duration": 0.5, "fade_duration": 0.3,
    "add_audio_overlay": true, "normalize_audio": true
  }
}`;

/** The seed README's "Manual Testing with Custom Blueprint" example, verbatim. */
export const SEED_MANUAL_EXAMPLE = `{
  "task_id": "test-123",
  "audio_path": "data/songs/test.mp3",
  "moves": [
    {
      "clip_id": "move_1",
      "video_path": "data/Bachata_steps/basic_steps/basic_1.mp4",
      "start_time": 0.0,
      "duration": 8.0,
      "transition_type": "cut"
    },
    {
      "clip_id": "move_2",
      "video_path": "data/Bachata_steps/body_roll/body_roll_1.mp4",
      "start_time": 8.0,
      "duration": 8.0,
      "transition_type": "crossfade"
    }
  ],
  "total_duration": 16.0,
  "output_config": {
    "output_path": "data/output/test_choreography.mp4"
  }
}`;

/** The seed README's "Example Blueprint Structure", verbatim. */
export const SEED_STRUCTURE_EXAMPLE = `{
  "task_id": "abc-123",
  "audio_path": "data/songs/Amor.mp3",
  "audio_tempo": 129.2,
  "moves": [
    {
      "clip_id": "move_1",
      "video_path": "data/Bachata_steps/body_roll/body_roll_1.mp4",
      "start_time": 0.0,
      "duration": 8.0,
      "transition_type": "cut"
    },
    {
      "clip_id": "move_2",
      "video_path": "data/Bachata_steps/body_roll/body_roll_3.mp4",
      "start_time": 8.0,
      "duration": 8.0,
      "transition_type": "crossfade"
    }
  ],
  "total_duration": 16.0,
  "difficulty_level": "intermediate",
  "output_config": {
    "output_path": "data/output/choreography_abc-123.mp4",
    "output_format": "mp4",
    "video_codec": "libx264",
    "audio_codec": "aac"
  }
}`;

/** One clip of the API's library as its move search returns it. */
export interface ApiClip {
  video_path: string;
  /** Length of the clip in seconds. */
  duration: number;
}

export interface ApiBlueprintOptions {
  task_id: string;
  user_id: number;
  audio_path: string;
  song_duration: number;
  /** The matching moves, cycled in order as the generator does. */
  clips: ApiClip[];
  /** The music analyser's sections: the song split in this many equal parts (default 4). */
  sections?: number;
}

/**
 * A blueprint shaped exactly like the API's rule-based generator output: the song split into equal sections,
 * each filled with moves of `min(clip, remaining)` while `section_time < section_duration`, `start_time` a
 * running float sum, the first move `cut` and the rest `crossfade`, total = the end of the last move, and the
 * output_config and output path the API uses. Float arithmetic is the generator's (IEEE doubles, as Python's).
 */
export function apiBlueprint(options: ApiBlueprintOptions): TestBlueprint {
  const sections = options.sections ?? 4;
  const moves: TestMove[] = [];
  let current = 0;
  let index = 0;
  for (let s = 0; s < sections; s++) {
    const sectionDuration =
      ((s + 1) * options.song_duration) / sections - (s * options.song_duration) / sections;
    let sectionTime = 0;
    // The generator has no bound; this one stops past the job's 500-move limit (a test guard).
    while (sectionTime < sectionDuration && moves.length <= 500) {
      const clip = options.clips[index % options.clips.length]!;
      const duration = Math.min(clip.duration, sectionDuration - sectionTime);
      moves.push({
        clip_id: `move_${moves.length + 1}`,
        video_path: clip.video_path,
        start_time: current,
        duration,
        transition_type: moves.length > 0 ? "crossfade" : "cut",
        original_duration: duration,
        trim_start: 0,
        trim_end: 0,
        volume_adjustment: 1,
      });
      current += duration;
      sectionTime += duration;
      index++;
    }
  }
  const total = moves.reduce(
    (end, move) => Math.max(end, (move["start_time"] as number) + (move["duration"] as number)),
    0,
  );
  return {
    task_id: options.task_id,
    audio_path: options.audio_path,
    audio_tempo: 129.19921875,
    moves,
    total_duration: total,
    difficulty_level: "intermediate",
    generation_timestamp: "2026-01-15T10:21:07.123456Z",
    generation_parameters: { energy_level: "medium", style: "sensual", user_id: options.user_id },
    output_config: {
      output_path: `output/user_${options.user_id}/choreography_${options.task_id}.mp4`,
      output_format: "mp4",
      video_codec: "libx264",
      audio_codec: "aac",
      video_bitrate: "2M",
      audio_bitrate: "128k",
      frame_rate: 30,
      transition_duration: 0.5,
      fade_duration: 0.3,
      add_audio_overlay: true,
      normalize_audio: true,
    },
  };
}

/**
 * The contract fixture: four sections of 2.046 s over a library of eight clips, so the generator leaves
 * remainders of 0.046 s (1.4 frames) and 0.00025 s (no frame at all), with `songs/…`, `data/Bachata_steps/…`
 * and `Bachata_steps/…` keys mixed in one blueprint as the API sends them.
 */
export const API_CLIPS: ApiClip[] = [
  { video_path: "data/Bachata_steps/basic_steps/basic_1.mp4", duration: 1.0 },
  { video_path: "Bachata_steps/body_roll/body_roll_1.mp4", duration: 1.0 },
  { video_path: "data/Bachata_steps/cross_body_lead/cross_body_lead_1.mp4", duration: 0.9 },
  { video_path: "data/Bachata_steps/basic_steps/basic_2.mp4", duration: 0.84575 },
  { video_path: "Bachata_steps/hammerlock/hammerlock_1.mp4", duration: 1.2 },
  { video_path: "data/Bachata_steps/body_roll/body_roll_3.mp4", duration: 0.7 },
  { video_path: "data/Bachata_steps/turns/turn_1.mp4", duration: 1.5 },
  { video_path: "Bachata_steps/turns/turn_2.mp4", duration: 0.6 },
];

export function apiContractBlueprint(task_id: string, user_id = 1): TestBlueprint {
  return apiBlueprint({
    task_id,
    user_id,
    audio_path: "songs/Eso_es_amor.mp3",
    song_duration: 8.184,
    clips: API_CLIPS,
  });
}
