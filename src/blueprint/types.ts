/**
 * The validated, normalised blueprint: what `parseBlueprint` returns once every rule of SPEC §3.1 holds.
 * Field names stay those of the API's JSON (snake_case) so logs and errors speak the producer's language.
 * Every default is already applied; storage keys are normalised (a `gs://<bucket>/` prefix removed).
 */
export const TRANSITION_TYPES = [
  "cut",
  "crossfade",
  "fade_black",
  "fade_white",
  "wipe_left",
  "wipe_right",
  "zoom_in",
  "zoom_out",
  "rotate",
] as const;
export type TransitionType = (typeof TRANSITION_TYPES)[number];

export const OUTPUT_FORMATS = ["mp4", "mov", "mkv", "webm"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export const VIDEO_CODECS = ["libx264", "libx265", "libvpx-vp9"] as const;
export type VideoCodec = (typeof VIDEO_CODECS)[number];

export const AUDIO_CODECS = ["aac", "libopus", "libmp3lame"] as const;
export type AudioCodec = (typeof AUDIO_CODECS)[number];

export const X26X_PRESETS = [
  "ultrafast",
  "superfast",
  "veryfast",
  "faster",
  "fast",
  "medium",
  "slow",
  "slower",
  "veryslow",
] as const;
export type Preset = (typeof X26X_PRESETS)[number];

export interface Move {
  /** `move_<n>` (1-based) when the blueprint gives none. */
  clip_id: string;
  /** Storage key of the source clip. */
  video_path: string;
  start_time: number;
  duration: number;
  transition_type: TransitionType;
  /** Per-move window for the transition *into* this move; overrides output_config.transition_duration. */
  transition_duration?: number;
  trim_start: number;
  trim_end: number;
  volume_adjustment: number;
  original_duration?: number;
}

export interface Resolution {
  width: number;
  height: number;
}

export interface OutputConfig {
  output_path: string;
  output_format: OutputFormat;
  video_codec: VideoCodec;
  audio_codec: AudioCodec;
  /** When set, that bitrate is targeted instead of CRF (e.g. "2M"). */
  video_bitrate?: string;
  audio_bitrate: string;
  crf: number;
  preset: Preset;
  frame_rate: number;
  resolution?: Resolution;
  transition_duration: number;
  fade_duration: number;
  normalize_audio: boolean;
}

export interface Blueprint {
  task_id: string;
  audio_path: string;
  audio_tempo?: number;
  moves: Move[];
  /** End of the last move (equals the blueprint's total_duration when it gave one). */
  total_duration: number;
  difficulty_level?: "beginner" | "intermediate" | "advanced";
  /** Informational, logged only. */
  generation_timestamp?: string;
  /** Informational, logged only. */
  generation_parameters?: Record<string, unknown>;
  output_config: OutputConfig;
  /** What validation changed to make the blueprint renderable (e.g. a sub-2-frame move absorbed). */
  warnings: string[];
}

/** Defaults that come from the environment (SPEC §2); the blueprint's output_config overrides them. */
export interface BlueprintDefaults {
  output_format: OutputFormat;
  video_codec: VideoCodec;
  audio_codec: AudioCodec;
  audio_bitrate: string;
  crf: number;
  preset: Preset;
  frame_rate: number;
  /** Set in GCS mode: `gs://<bucket>/key` is then accepted and means `key`. */
  gcs_bucket?: string;
}

/** One validation problem. `path` is a JSON path like `moves[3].duration` (empty for the document). */
export interface BlueprintIssue {
  path: string;
  message: string;
  expected?: string;
  found?: string;
}

export type ParseResult = { ok: true; blueprint: Blueprint } | { ok: false; issues: BlueprintIssue[] };
