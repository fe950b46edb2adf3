/**
 * The blueprint *document* as the API sends it (SPEC §3.1): types, ranges and defaults of each field on
 * its own. Rules that need more than one field (timeline tiling, frame counts, format ↔ extension ↔
 * codec, storage keys) live in rules.ts; parse.ts runs both and builds the validated `Blueprint`.
 *
 * Objects are loose: unknown extra fields are accepted (a newer API must not break this job) and
 * dropped when the Blueprint is built. The same schema generates docs/blueprint.schema.json.
 */
import { z } from "zod";
import { AUDIO_CODECS, OUTPUT_FORMATS, TRANSITION_TYPES, VIDEO_CODECS, X26X_PRESETS } from "./types.js";

export const LIMITS = {
  /** Size of the JSON text, in UTF-8 bytes. */
  maxBlueprintBytes: 1024 * 1024,
  maxMoves: 500,
  /** The API's `task_id` column is `varchar(36)` (a UUID). */
  maxTaskIdLength: 36,
  maxClipIdLength: 128,
  /** Length of the whole timeline, in seconds. */
  maxTimelineSeconds: 3600,
  minFrameRate: 1,
  maxFrameRate: 120,
  /** Largest width or height of `output_config.resolution`. */
  maxResolution: 3840,
  /** A move lasts at least this many output frames. */
  minMoveFrames: 2,
  /** CRF upper bound per video codec. */
  maxCrf: { libx264: 51, libx265: 51, "libvpx-vp9": 63 },
} as const;

export const DEFAULT_TRANSITION_DURATION = 0.5;
export const DIFFICULTY_LEVELS = ["beginner", "intermediate", "advanced"] as const;

export const BITRATE_PATTERN = /^[1-9][0-9]*(\.[0-9]+)?[kKmM]?$/;
/** `"1280x720"`; evenness and the size limit are checked in rules.ts with a precise message. */
export const RESOLUTION_PATTERN = /^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$/;
const NON_BLANK = /\S/;
/** C0, DEL and C1 control characters (NUL included) are refused in ids that reach the database. */
export const NO_CONTROL = /^[^\u0000-\u001f\u007f-\u009f]*$/;

/** The `expected …` phrase of a pattern failure travels as the zod issue message (see issues.ts). */
const nonBlank = (maxLength: number) =>
  z.string().regex(NON_BLANK, { error: "a non-blank string" }).max(maxLength);
const bitrate = (example: string) =>
  z
    .string()
    .regex(BITRATE_PATTERN, { error: `a bitrate like ${example} (digits, optional k or M)` })
    .meta({ examples: [example] });
const storageKey = (description: string) =>
  z.string().meta({
    description: `${description}. A storage key: a relative POSIX path, no '..' segments, backslashes, control characters or URL schemes; in GCS mode gs://<configured bucket>/key is also accepted; in local mode it is relative to the data directory and a leading data/ is stripped.`,
  });

export const MoveSchema = z
  .looseObject({
    clip_id: nonBlank(LIMITS.maxClipIdLength)
      .optional()
      .meta({ description: "Identifier used in logs and errors; defaults to move_<n> (1-based)." }),
    video_path: storageKey("The source clip"),
    start_time: z.number().min(0).meta({
      description:
        "Where the move starts on the output timeline, in seconds. The first move starts at 0, each next one where the previous ends.",
    }),
    duration: z.number().positive().meta({
      description:
        "Seconds of the move on the timeline. A move shorter than 2 frames at the output frame rate is merged into a neighbouring move (with a warning in the result).",
    }),
    transition_type: z.enum(TRANSITION_TYPES).default("cut").meta({
      description:
        "Transition into this move, in the window just before its start: cut (none), crossfade (blend), fade_black / fade_white (dip through black/white), wipe_left / wipe_right (a vertical edge reveals the incoming move, travelling right-to-left / left-to-right), zoom_in (the outgoing move zooms into its centre while blending into the incoming one), zoom_out (the incoming move settles from 2x magnified to full frame while blending in), rotate (the outgoing move turns a quarter turn clockwise out, the incoming one turns in, black behind).",
    }),
    transition_duration: z.number().positive().optional().meta({
      description:
        "Window of the transition into this move, in seconds; overrides output_config.transition_duration.",
    }),
    trim_start: z
      .number()
      .min(0)
      .default(0)
      .meta({ description: "Where in the source clip the move's footage begins, in seconds." }),
    trim_end: z.number().min(0).default(0).meta({ description: "Informational, in seconds." }),
    volume_adjustment: z
      .number()
      .min(0)
      .max(1)
      .default(1)
      .meta({ description: "Accepted for compatibility; the clips' own audio is not used." }),
    original_duration: z
      .number()
      .positive()
      .optional()
      .meta({ description: "Informational: length of the source clip, in seconds." }),
  })
  .meta({ title: "Move" });

export const OutputConfigSchema = z
  .looseObject({
    output_path: storageKey("Where the video is written; its extension matches the output format"),
    output_format: z.enum(OUTPUT_FORMATS).optional().meta({
      description: "Container. Defaults to the output_path extension, else VIDEO_OUTPUT_FORMAT.",
    }),
    video_codec: z.enum(VIDEO_CODECS).optional().meta({
      description:
        "Defaults to VIDEO_CODEC when the format allows it, else the format's natural codec (webm: libvpx-vp9, mp4/mov: libx264).",
    }),
    audio_codec: z.enum(AUDIO_CODECS).optional().meta({
      description:
        "Defaults to AUDIO_CODEC when the format allows it, else the format's natural codec (webm: libopus, mp4/mov: aac).",
    }),
    video_bitrate: bitrate("2M")
      .optional()
      .meta({ description: "When given, this bitrate is targeted instead of CRF." }),
    audio_bitrate: bitrate("128k").optional().meta({ description: "Defaults to AUDIO_BITRATE." }),
    crf: z.number().int().min(0).optional().meta({
      // The per-codec bound (51 for x264/x265, 63 for vp9) is checked in rules.ts.
      maximum: LIMITS.maxCrf["libvpx-vp9"],
      description:
        "Constant rate factor: 0-51 for libx264/libx265, 0-63 for libvpx-vp9. Defaults to VIDEO_CRF.",
    }),
    preset: z
      .enum(X26X_PRESETS)
      .optional()
      .meta({ description: "x264/x265 preset. Defaults to VIDEO_PRESET." }),
    frame_rate: z
      .number()
      .min(LIMITS.minFrameRate)
      .max(LIMITS.maxFrameRate)
      .optional()
      .meta({ description: "Output frames per second. Defaults to VIDEO_FPS." }),
    resolution: z
      .string()
      .regex(RESOLUTION_PATTERN, { error: 'a size like "1280x720"' })
      .optional()
      .meta({
        description: `"WIDTHxHEIGHT", even numbers, at most ${LIMITS.maxResolution} each. Defaults to the first clip's display size.`,
      }),
    transition_duration: z
      .number()
      .positive()
      .default(DEFAULT_TRANSITION_DURATION)
      .meta({ description: "Default transition window, in seconds." }),
    fade_duration: z
      .number()
      .min(0)
      .default(0)
      .meta({ description: "Audio fade-in at the start and fade-out at the end, in seconds." }),
    normalize_audio: z
      .boolean()
      .default(false)
      .meta({ description: "Loudness-normalise the song (EBU R128, about -16 LUFS)." }),
    add_audio_overlay: z
      .boolean()
      .optional()
      .meta({ description: "Accepted for compatibility; the song is always the soundtrack." }),
  })
  .meta({ title: "OutputConfig" });

export const BlueprintSchema = z
  .looseObject({
    task_id: nonBlank(LIMITS.maxTaskIdLength).regex(NO_CONTROL, { error: "no control characters" }).meta({
      description:
        "The task row this execution renders for (at most 36 characters, no control characters); must equal TASK_ID when that is set.",
    }),
    audio_path: storageKey("The song"),
    audio_tempo: z.number().positive().optional().meta({ description: "Informational: beats per minute." }),
    moves: z
      .array(MoveSchema)
      .min(1)
      .max(LIMITS.maxMoves)
      .meta({ description: "The clips in timeline order; together they tile the timeline." }),
    total_duration: z.number().positive().optional().meta({
      description: "When given, equals the end of the last move (within one frame). At most one hour.",
    }),
    difficulty_level: z.enum(DIFFICULTY_LEVELS).optional().meta({ description: "Informational." }),
    generation_timestamp: z.string().optional().meta({ description: "Informational." }),
    generation_parameters: z.looseObject({}).optional().meta({ description: "Informational." }),
    output_config: OutputConfigSchema,
  })
  .meta({
    title: "Choreography video blueprint",
    description:
      "What the video assembly job renders: a song, the moves that tile its timeline, and output settings. Unknown fields are accepted and ignored.",
  });

/** The document as the API sends it (before defaults). */
export type BlueprintInput = z.input<typeof BlueprintSchema>;
/** The document after the per-field checks and defaults, before the cross-field rules. */
export type BlueprintDocument = z.output<typeof BlueprintSchema>;

/** JSON Schema (draft 2020-12) of the input document; written to docs/blueprint.schema.json. */
export function blueprintJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(BlueprintSchema, { io: "input", target: "draft-2020-12" });
}

/** The exact text of docs/blueprint.schema.json. */
export function renderBlueprintJsonSchema(): string {
  return `${JSON.stringify(blueprintJsonSchema(), null, 2)}\n`;
}
