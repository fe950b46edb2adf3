/**
 * The rules that need more than one field (SPEC §3.1, §3.2): storage keys, output format ↔ extension ↔
 * codecs, per-codec CRF, resolution, frame counts, timeline tiling, total length.
 *
 * They read the raw document and skip every value the schema already rejected (its path is in
 * `invalid`), so each problem is reported once and all of them are reported together.
 */

import { describeValue, formatSeconds, issue } from "./issues.js";
import { checkStorageKey, extensionOf } from "./paths.js";
import { LIMITS, RESOLUTION_PATTERN } from "./schema.js";
import {
  AUDIO_CODECS,
  type AudioCodec,
  type BlueprintDefaults,
  type BlueprintIssue,
  OUTPUT_FORMATS,
  type OutputFormat,
  type Resolution,
  VIDEO_CODECS,
  type VideoCodec,
} from "./types.js";

/** Which codecs each container takes; the first of each list is the format's natural codec. */
export const FORMAT_CODECS: Record<
  OutputFormat,
  { video: readonly VideoCodec[]; audio: readonly AudioCodec[] }
> = {
  mp4: { video: ["libx264", "libx265"], audio: ["aac", "libmp3lame"] },
  mov: { video: ["libx264", "libx265"], audio: ["aac", "libmp3lame"] },
  mkv: { video: VIDEO_CODECS, audio: AUDIO_CODECS },
  webm: { video: ["libvpx-vp9"], audio: ["libopus"] },
};

/** Output settings decided here because they depend on several fields or on the defaults. */
export interface ResolvedOutput {
  output_format: OutputFormat;
  video_codec: VideoCodec;
  audio_codec: AudioCodec;
  crf: number;
  frame_rate: number;
  resolution?: Resolution;
}

export interface RuleResult {
  issues: BlueprintIssue[];
  output: ResolvedOutput;
  /** Normalised storage keys; undefined where the key was invalid. */
  keys: { audio?: string; videos: (string | undefined)[]; output?: string };
  /** End of the last move, when it could be computed. */
  timelineEnd?: number;
}

type Doc = Record<string, unknown>;

/** Room for floating-point noise in frame arithmetic (e.g. `0.1 * 30`). */
const EPSILON = 1e-6;

function isRecord(value: unknown): value is Doc {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[]): T | undefined {
  return typeof value === "string" && (allowed as readonly string[]).includes(value)
    ? (value as T)
    : undefined;
}

export function applyRules(
  raw: unknown,
  defaults: BlueprintDefaults,
  invalid: ReadonlySet<string>,
): RuleResult {
  const issues: BlueprintIssue[] = [];
  const doc: Doc = isRecord(raw) ? raw : {};
  const config: Doc = isRecord(doc["output_config"]) ? doc["output_config"] : {};
  const rawMoves = Array.isArray(doc["moves"]) ? (doc["moves"] as unknown[]) : [];

  /** A value that passed its own schema check, or undefined. */
  const valid = (obj: Doc, key: string, path: string): unknown => (invalid.has(path) ? undefined : obj[key]);
  const number = (obj: Doc, key: string, path: string): number | undefined => {
    const value = valid(obj, key, path);
    return typeof value === "number" ? value : undefined;
  };
  const storageKey = (obj: Doc, key: string, path: string): string | undefined => {
    const value = valid(obj, key, path);
    if (typeof value !== "string") return undefined;
    const checked = checkStorageKey(value, {
      bucket: defaults.gcs_bucket,
      stripDataPrefix: defaults.gcs_bucket === undefined,
    });
    if (checked.ok) return checked.key;
    issues.push(issue(path, "a relative storage path", `${checked.reason}: ${describeValue(value)}`));
    return undefined;
  };

  const keys: RuleResult["keys"] = {
    audio: storageKey(doc, "audio_path", "audio_path"),
    videos: rawMoves.map((move, index) =>
      isRecord(move) ? storageKey(move, "video_path", `moves[${index}].video_path`) : undefined,
    ),
    output: storageKey(config, "output_path", "output_config.output_path"),
  };
  const output = resolveOutput(config, defaults, keys.output, valid, issues);
  checkOutputIsNotAnInput(keys, issues);
  const timelineEnd = checkTimeline(doc, rawMoves, output.frame_rate, number, valid, issues);
  return { issues, output, keys, ...(timelineEnd !== undefined && { timelineEnd }) };
}

function resolveOutput(
  config: Doc,
  defaults: BlueprintDefaults,
  outputKey: string | undefined,
  valid: (obj: Doc, key: string, path: string) => unknown,
  issues: BlueprintIssue[],
): ResolvedOutput {
  const at = (key: string) => valid(config, key, `output_config.${key}`);
  const formatIsInvalid = config["output_format"] !== undefined && at("output_format") === undefined;
  const givenFormat = oneOf(at("output_format"), OUTPUT_FORMATS);
  const extension = outputKey === undefined ? "" : extensionOf(outputKey);
  const extensionFormat = oneOf(extension, OUTPUT_FORMATS);
  const format = givenFormat ?? extensionFormat ?? defaults.output_format;

  if (outputKey !== undefined && extensionFormat === undefined) {
    issues.push(
      issue(
        "output_config.output_path",
        givenFormat === undefined
          ? "a video file name ending in .mp4, .mov, .mkv or .webm"
          : `a file name ending in .${givenFormat} (output_format ${givenFormat})`,
        describeValue(outputKey),
      ),
    );
  } else if (givenFormat !== undefined && extensionFormat !== undefined && givenFormat !== extensionFormat) {
    issues.push(
      issue(
        "output_config.output_format",
        `"${extensionFormat}" to match the output_path extension`,
        describeValue(givenFormat),
      ),
    );
  }

  // With an invalid output_format the container is unknown: don't guess codec conflicts.
  const allowed = formatIsInvalid ? { video: VIDEO_CODECS, audio: AUDIO_CODECS } : FORMAT_CODECS[format];
  const video_codec = pickCodec(
    "video_codec",
    at("video_codec"),
    VIDEO_CODECS,
    defaults.video_codec,
    allowed.video,
    format,
    issues,
  );
  const audio_codec = pickCodec(
    "audio_codec",
    at("audio_codec"),
    AUDIO_CODECS,
    defaults.audio_codec,
    allowed.audio,
    format,
    issues,
  );

  const maxCrf = LIMITS.maxCrf[video_codec];
  const givenCrf = at("crf");
  const codecIsInvalid = config["video_codec"] !== undefined && at("video_codec") === undefined;
  if (typeof givenCrf === "number" && givenCrf > maxCrf && !codecIsInvalid) {
    issues.push(
      issue("output_config.crf", `an integer from 0 to ${maxCrf} for ${video_codec}`, String(givenCrf)),
    );
  }
  // A default CRF chosen for another codec is clamped to this one's range.
  const crf = typeof givenCrf === "number" ? givenCrf : Math.min(defaults.crf, maxCrf);

  const givenRate = at("frame_rate");
  const frame_rate = typeof givenRate === "number" ? givenRate : defaults.frame_rate;

  const resolution = parseResolution(at("resolution"), issues);
  return {
    output_format: format,
    video_codec,
    audio_codec,
    crf,
    frame_rate,
    ...(resolution && { resolution }),
  };
}

/**
 * The blueprint's codec when given (an error if the container can't hold it); otherwise the
 * environment default when the container takes it, else the container's natural codec.
 */
function pickCodec<T extends string>(
  field: "video_codec" | "audio_codec",
  rawValue: unknown,
  all: readonly T[],
  fallback: T,
  allowed: readonly T[],
  format: OutputFormat,
  issues: BlueprintIssue[],
): T {
  const given = oneOf(rawValue, all);
  if (given !== undefined) {
    if (!allowed.includes(given)) {
      issues.push(
        issue(`output_config.${field}`, `${allowed.join(" or ")} for ${format} output`, describeValue(given)),
      );
    }
    return given;
  }
  return allowed.includes(fallback) ? fallback : allowed[0]!;
}

function parseResolution(rawValue: unknown, issues: BlueprintIssue[]): Resolution | undefined {
  if (typeof rawValue !== "string") return undefined;
  const match = RESOLUTION_PATTERN.exec(rawValue);
  if (match === null) return undefined;
  const width = Number(match[1]);
  const height = Number(match[2]);
  const max = LIMITS.maxResolution;
  if (width % 2 !== 0 || height % 2 !== 0 || width > max || height > max) {
    issues.push(
      issue(
        "output_config.resolution",
        `even width and height, each at most ${max}`,
        describeValue(rawValue),
      ),
    );
    return undefined;
  }
  return { width, height };
}

function checkOutputIsNotAnInput(keys: RuleResult["keys"], issues: BlueprintIssue[]): void {
  const output = keys.output;
  if (output === undefined) return;
  // Equal, inside an input (`clips/a.mp4/out.mp4`) or containing one (`clips` as a "file").
  const clashes = (input: string | undefined) =>
    input !== undefined &&
    (input === output || output.startsWith(`${input}/`) || input.startsWith(`${output}/`));
  const videoIndex = keys.videos.findIndex(clashes);
  const clash = clashes(keys.audio)
    ? "audio_path"
    : videoIndex >= 0
      ? `moves[${videoIndex}].video_path`
      : undefined;
  if (clash !== undefined) {
    const input = clash === "audio_path" ? keys.audio : keys.videos[videoIndex];
    const relation =
      input === output ? "the same as" : output.startsWith(`${input}/`) ? "inside" : "containing";
    issues.push(
      issue(
        "output_config.output_path",
        `a path different from every input`,
        `${describeValue(output)}, ${relation} ${clash}`,
      ),
    );
  }
}

/**
 * Frame counts and tiling (SPEC §3.1): the timeline lasts at least 2 frames (a shorter move is absorbed
 * later, see absorb.ts); the first move starts at 0 and each next one where the previous ends, within half
 * a frame; total_duration equals the end within a frame; the whole timeline lasts at most an hour.
 * Returns the end of the last move when it is known.
 */
function checkTimeline(
  doc: Doc,
  rawMoves: unknown[],
  fps: number,
  number: (obj: Doc, key: string, path: string) => number | undefined,
  valid: (obj: Doc, key: string, path: string) => unknown,
  issues: BlueprintIssue[],
): number | undefined {
  const minFrames = LIMITS.minMoveFrames;
  let previousEnd: number | undefined = 0;
  rawMoves.forEach((move, index) => {
    if (!isRecord(move)) {
      previousEnd = undefined;
      return;
    }
    const path = `moves[${index}]`;
    const start = number(move, "start_time", `${path}.start_time`);
    const duration = number(move, "duration", `${path}.duration`);
    if (start !== undefined && previousEnd !== undefined) {
      const offset = start - previousEnd;
      if (Math.abs(offset) * fps >= 0.5 - EPSILON) {
        const clipId = valid(move, "clip_id", `${path}.clip_id`);
        const name = typeof clipId === "string" ? clipId : `move_${index + 1}`;
        const where = index === 0 ? "the start of the timeline" : `where moves[${index - 1}] ends`;
        const kind = offset > 0 ? "gap" : "overlap";
        const expected = `${formatSeconds(previousEnd)} (${where})`;
        const found = `${start} (a ${formatSeconds(Math.abs(offset))} s ${kind})`;
        issues.push({
          path: `${path}.start_time`,
          message: `move ${JSON.stringify(name)} must start ${index === 0 ? "at 0" : "where the previous move ends"}: expected ${expected}, found ${found}`,
          expected,
          found,
        });
      }
    }
    previousEnd = start !== undefined && duration !== undefined ? start + duration : undefined;
  });
  const end = rawMoves.length > 0 ? previousEnd : undefined;
  // A move shorter than 2 frames is absorbed into a neighbour (absorb.ts); only a timeline that is
  // too short as a whole has nothing to absorb it.
  if (end !== undefined && end * fps < minFrames - EPSILON) {
    const single = rawMoves.length === 1;
    issues.push(
      issue(
        single ? "moves[0].duration" : "moves",
        `${single ? "" : "a timeline of "}at least ${minFrames} frames at ${formatSeconds(fps)} fps (${formatSeconds(minFrames / fps)} s)`,
        `${formatSeconds(end)} (${formatSeconds(end * fps)} frames)`,
      ),
    );
  }

  const total = number(doc, "total_duration", "total_duration");
  if (total !== undefined && end !== undefined && Math.abs(total - end) * fps > 1 + EPSILON) {
    issues.push(
      issue(
        "total_duration",
        `${formatSeconds(end)} (the end of the last move, within 1 frame)`,
        formatSeconds(total),
      ),
    );
  }
  const length = end ?? total;
  const max = LIMITS.maxTimelineSeconds;
  if (length !== undefined && length > max + EPSILON) {
    issues.push(
      issue(
        end !== undefined ? "moves" : "total_duration",
        `a timeline of at most ${max} s (1 hour)`,
        `${formatSeconds(length)} s`,
      ),
    );
  }
  return end;
}
