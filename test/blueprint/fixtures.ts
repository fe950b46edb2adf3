import type { BlueprintDefaults } from "../../src/blueprint/types.js";

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

/** A valid blueprint whose moves (clips/clip_<n>.mp4) tile the timeline with the given durations. */
export function makeBlueprint(durations: number[] = [8, 8]): TestBlueprint {
  let start = 0;
  const moves = durations.map((duration, index) => {
    const move: TestMove = {
      clip_id: `move_${index + 1}`,
      video_path: `clips/clip_${index + 1}.mp4`,
      start_time: start,
      duration,
      transition_type: index === 0 ? "cut" : "crossfade",
    };
    start += duration;
    return move;
  });
  return {
    task_id: "0b4c6f1e-7d2a-4c55-9a0e-3f1d2c4b5a69",
    audio_path: "songs/Amor.mp3",
    moves,
    total_duration: start,
    output_config: { output_path: "output/choreography.mp4" },
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
