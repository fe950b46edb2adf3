/** Human-readable text for blueprint problems and for `--check`. */
import { formatSeconds } from "./issues.js";
import { type Blueprint, type BlueprintIssue, TRANSITION_TYPES } from "./types.js";

/**
 * One line per issue: `moves[3].duration: expected a number > 0, found -1`. Messages that already
 * name their field (the Python job's, e.g. `Missing required field: audio_path`) are kept verbatim.
 */
export function formatIssues(issues: BlueprintIssue[], separator = "\n"): string {
  return issues.map(formatIssue).join(separator);
}

function formatIssue({ path, message }: BlueprintIssue): string {
  return path === "" ? message : `${path}: ${message}`;
}

/** `m:ss.sss` for long timelines, plain seconds for short ones. */
function formatLength(seconds: number): string {
  if (seconds < 60) return `${formatSeconds(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  const rest = seconds - minutes * 60;
  return `${formatSeconds(seconds)} s (${minutes}:${rest < 10 ? "0" : ""}${formatSeconds(rest)})`;
}

/** A short summary of what would be rendered (for `--check`). */
export function summarizeBlueprint(bp: Blueprint): string {
  const out = bp.output_config;
  const counts = TRANSITION_TYPES.map(
    (type) => [type, bp.moves.filter((move) => move.transition_type === type).length] as const,
  ).filter(([, count]) => count > 0);
  const transitions = counts.map(([type, count]) => `${count} ${type}`).join(", ");
  const size = out.resolution ? `${out.resolution.width}x${out.resolution.height}` : "size of the first clip";
  const quality = out.video_bitrate !== undefined ? `${out.video_bitrate} video bitrate` : `crf ${out.crf}`;
  const audioSteps = [
    out.fade_duration > 0 ? `fade ${formatSeconds(out.fade_duration)} s` : undefined,
    out.normalize_audio ? "loudness-normalised" : undefined,
  ].filter((step) => step !== undefined);
  const lines = [
    `Blueprint for task ${bp.task_id}: valid`,
    `  moves:       ${bp.moves.length}, timeline ${formatLength(bp.total_duration)}`,
    `  transitions: ${transitions} (default window ${formatSeconds(out.transition_duration)} s)`,
    `  song:        ${bp.audio_path}${audioSteps.length > 0 ? ` (${audioSteps.join(", ")})` : ""}`,
    `  output:      ${out.output_path}`,
    `  format:      ${out.output_format}, ${out.video_codec} (${quality}, preset ${out.preset}) + ${out.audio_codec} ${out.audio_bitrate}, ${formatSeconds(out.frame_rate)} fps, ${size}`,
    ...bp.warnings.map((warning) => `  warning:     ${warning}`),
  ];
  return lines.join("\n");
}

/** What would be rendered, as data (for `--check --json` and `--dry-run --json`). */
export interface BlueprintSummary {
  task_id: string;
  moves: number;
  total_duration: number;
  transitions: Partial<Record<(typeof TRANSITION_TYPES)[number], number>>;
  transition_duration: number;
  audio_path: string;
  fade_duration: number;
  normalize_audio: boolean;
  output_path: string;
  output_format: string;
  video_codec: string;
  audio_codec: string;
  crf: number;
  video_bitrate: string | null;
  audio_bitrate: string;
  preset: string;
  frame_rate: number;
  /** `WIDTHxHEIGHT`, or null: the first clip's size. */
  resolution: string | null;
}

export function summaryOf(bp: Blueprint): BlueprintSummary {
  const out = bp.output_config;
  const transitions: BlueprintSummary["transitions"] = {};
  for (const type of TRANSITION_TYPES) {
    const count = bp.moves.filter((move) => move.transition_type === type).length;
    if (count > 0) transitions[type] = count;
  }
  return {
    task_id: bp.task_id,
    moves: bp.moves.length,
    total_duration: bp.total_duration,
    transitions,
    transition_duration: out.transition_duration,
    audio_path: bp.audio_path,
    fade_duration: out.fade_duration,
    normalize_audio: out.normalize_audio,
    output_path: out.output_path,
    output_format: out.output_format,
    video_codec: out.video_codec,
    audio_codec: out.audio_codec,
    crf: out.crf,
    video_bitrate: out.video_bitrate ?? null,
    audio_bitrate: out.audio_bitrate,
    preset: out.preset,
    frame_rate: out.frame_rate,
    resolution: out.resolution ? `${out.resolution.width}x${out.resolution.height}` : null,
  };
}
