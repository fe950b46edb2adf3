/**
 * Blueprint text or value → a validated, normalised `Blueprint`, or every problem at once (SPEC §3).
 * Pure and total: no I/O, and no input makes these functions throw.
 */
import { absorbShortMoves } from "./absorb.js";
import { fromZodIssue, sortIssues } from "./issues.js";
import { applyRules, type RuleResult } from "./rules.js";
import { type BlueprintDocument, BlueprintSchema, LIMITS } from "./schema.js";
import type {
  Blueprint,
  BlueprintDefaults,
  BlueprintIssue,
  Move,
  OutputConfig,
  ParseResult,
} from "./types.js";

/** Parses blueprint JSON text (at most 1 MiB) and validates it. */
export function parseBlueprint(text: string, defaults: BlueprintDefaults): ParseResult {
  if (typeof text !== "string") return failure("The blueprint must be JSON text", "a string", typeof text);
  if (exceedsMaxBytes(text)) {
    const bytes = new TextEncoder().encode(text).byteLength;
    return failure(
      `The blueprint is larger than 1 MiB of JSON (${bytes} bytes)`,
      `at most ${LIMITS.maxBlueprintBytes} bytes`,
      `${bytes} bytes`,
    );
  }
  let raw: unknown;
  try {
    // A byte-order mark from an editor is not a reason to fail.
    raw = JSON.parse(text.startsWith("\uFEFF") ? text.slice(1) : text);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return failure(`The blueprint is not valid JSON: ${reason}`, "JSON text", "invalid JSON");
  }
  return validateBlueprint(raw, defaults);
}

/** Validates an already-parsed blueprint value; `defaults` are the environment's (SPEC §2). */
export function validateBlueprint(raw: unknown, defaults: BlueprintDefaults): ParseResult {
  try {
    return validate(raw, defaults);
  } catch (err) {
    // Only exotic values (throwing getters, proxies) can get here; JSON never does.
    const reason = err instanceof Error ? err.message : String(err);
    return failure(`The blueprint could not be validated: ${reason}`, "a JSON object", "an unreadable value");
  }
}

function validate(raw: unknown, defaults: BlueprintDefaults): ParseResult {
  const parsed = BlueprintSchema.safeParse(raw, { reportInput: true });
  const issues: BlueprintIssue[] = parsed.success ? [] : parsed.error.issues.map(fromZodIssue);
  // The cross-field rules skip every value the schema rejected, so each problem is reported once.
  const rules = applyRules(raw, defaults, new Set(issues.map((problem) => problem.path)));
  issues.push(...rules.issues);
  if (parsed.success && issues.length === 0) {
    const blueprint = buildBlueprint(parsed.data, rules, defaults);
    if (blueprint !== undefined) return { ok: true, blueprint };
  }
  return issues.length > 0
    ? { ok: false, issues: sortIssues(issues) }
    : failure("The blueprint could not be validated", "a valid blueprint", "an inconsistent result");
}

function buildBlueprint(
  doc: BlueprintDocument,
  rules: RuleResult,
  defaults: BlueprintDefaults,
): Blueprint | undefined {
  const { keys, output, timelineEnd } = rules;
  if (keys.audio === undefined || keys.output === undefined || timelineEnd === undefined) return undefined;
  const moves: Move[] = [];
  for (const [index, move] of doc.moves.entries()) {
    const video_path = keys.videos[index];
    if (video_path === undefined) return undefined;
    moves.push({
      clip_id: move.clip_id ?? `move_${index + 1}`,
      video_path,
      start_time: move.start_time,
      duration: move.duration,
      transition_type: move.transition_type,
      ...(move.transition_duration !== undefined && { transition_duration: move.transition_duration }),
      trim_start: move.trim_start,
      trim_end: move.trim_end,
      volume_adjustment: move.volume_adjustment,
      ...(move.original_duration !== undefined && { original_duration: move.original_duration }),
    });
  }
  const config = doc.output_config;
  const output_config: OutputConfig = {
    output_path: keys.output,
    output_format: output.output_format,
    video_codec: output.video_codec,
    audio_codec: output.audio_codec,
    ...(config.video_bitrate !== undefined && { video_bitrate: config.video_bitrate }),
    audio_bitrate: config.audio_bitrate ?? defaults.audio_bitrate,
    crf: output.crf,
    preset: config.preset ?? defaults.preset,
    frame_rate: output.frame_rate,
    ...(output.resolution !== undefined && { resolution: output.resolution }),
    transition_duration: config.transition_duration,
    fade_duration: config.fade_duration,
    normalize_audio: config.normalize_audio,
  };
  // Desugared once: moves shorter than 2 frames merge into a neighbour (the generator's remainders).
  const absorbed = absorbShortMoves(moves, output.frame_rate);
  return {
    task_id: doc.task_id,
    audio_path: keys.audio,
    ...(doc.audio_tempo !== undefined && { audio_tempo: doc.audio_tempo }),
    moves: absorbed.moves,
    total_duration: timelineEnd,
    ...(doc.difficulty_level !== undefined && { difficulty_level: doc.difficulty_level }),
    ...(doc.generation_timestamp !== undefined && { generation_timestamp: doc.generation_timestamp }),
    ...(doc.generation_parameters !== undefined && { generation_parameters: doc.generation_parameters }),
    output_config,
    warnings: absorbed.warnings,
  };
}

function failure(message: string, expected: string, found: string): ParseResult {
  return { ok: false, issues: [{ path: "", message, expected, found }] };
}

/** Encodes only texts that might be too large: a UTF-16 code unit takes at most 3 bytes of UTF-8. */
function exceedsMaxBytes(text: string): boolean {
  if (text.length * 3 <= LIMITS.maxBlueprintBytes) return false;
  return (
    text.length > LIMITS.maxBlueprintBytes ||
    new TextEncoder().encode(text).byteLength > LIMITS.maxBlueprintBytes
  );
}
