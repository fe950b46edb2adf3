/**
 * The render plan's timeline (pure, deterministic): SPEC §3.3's timeline rules turned into
 * frame-exact pieces. No I/O; the FFmpeg arguments that render the pieces are in `commands.ts`.
 *
 * The video is rendered in segments: each move's *body* (its frames outside the next transition's
 * window) is one FFmpeg run, each non-cut transition window is one short run, all encoded with the
 * same parameters; the song is encoded once in its own run; a final run joins everything by stream
 * copy. A piece says *which frames of which source* (`SourceSpan`), separately from *how to encode*
 * (`VideoEncoding`), so a later clip cache can stream-copy bodies of pre-normalised clips.
 */
import type { Blueprint, OutputFormat, TransitionType } from "../blueprint/types.js";
import { JobError } from "../errors.js";
import type { Demuxer } from "./containers.js";
import { type AudioEncoding, evenSize, fitInto, type SourceFit, type VideoEncoding } from "./filters.js";
import type { MediaInfo } from "./media-info.js";

export type { VideoEncoding } from "./filters.js";

/** Frames of one source: frame k shows the source at `start + k/F` (held before its start / after its end). */
export interface SourceSpan {
  key: string;
  start: number;
  frames: number;
}

/** Transitions whose window shows the outgoing move in its first half and the incoming one in its second. */
const HALF_WINDOW_TYPES: ReadonlySet<TransitionType> = new Set(["fade_black", "fade_white", "rotate"]);

/** A move's frames outside any transition window. */
export interface BodyPiece {
  kind: "body";
  /** Move index (0-based). */
  move: number;
  clipId: string;
  /** First output frame. */
  startFrame: number;
  frames: number;
  source: SourceSpan;
  /**
   * First move only: its transition from nothing over its first `frames` (fade in from black, or
   * from white for `fade_white`; wipe, zoom or rotate in over black: see `openingGraph`).
   */
  opening?: { type: Exclude<TransitionType, "cut">; frames: number };
}

/**
 * A transition window: output frames `[startFrame, startFrame + frames)`, just before the incoming
 * move's start. `crossfade`, the wipes and the zooms combine `outgoing` and `incoming` (both
 * `frames` long) frame by frame; a fade dips, and `rotate` turns: `outgoing` fills the first half,
 * `incoming` the second.
 */
export interface TransitionPiece {
  kind: "transition";
  /** Index of the incoming move. */
  move: number;
  clipId: string;
  type: Exclude<TransitionType, "cut">;
  startFrame: number;
  frames: number;
  outgoing: SourceSpan;
  incoming: SourceSpan;
}

export type Piece = BodyPiece | TransitionPiece;

export interface MoveFrames {
  clipId: string;
  key: string;
  /** Output frames `[startFrame, endFrame)`. */
  startFrame: number;
  endFrame: number;
  /** Frames of the transition window into this move (0 for a cut / none). */
  transitionFrames: number;
}

export interface SourcePlan {
  /** The demuxer the job chose for the source file (containers.ts). */
  demuxer: Demuxer;
  duration: number;
  fit: SourceFit;
  fps: number;
  variableFrameRate: boolean;
  /** Frame j at exactly j/F from 0, F the output rate (a clip-cache entry): spans seek exactly. */
  onGrid?: boolean;
}

export interface AudioPlan extends AudioEncoding {
  key: string;
  /** The demuxer the job chose for the song file (containers.ts). */
  demuxer: Demuxer;
  /** Timeline length (s): the song is cut or padded with silence to it. */
  duration: number;
  songDuration: number;
  fade: number;
  normalize: boolean;
}

export interface RenderPlan {
  width: number;
  height: number;
  fps: number;
  totalFrames: number;
  /** totalFrames / fps. */
  duration: number;
  format: OutputFormat;
  moves: MoveFrames[];
  pieces: Piece[];
  sources: Record<string, SourcePlan>;
  video: VideoEncoding;
  audio: AudioPlan;
  warnings: string[];
}

/** Output frame index of a time, robust to binary noise (8.1·30 = 242.99999…). */
export function frameAt(seconds: number, fps: number): number {
  return Math.round(Number((seconds * fps).toFixed(6)));
}

const MAX_LONG_SIDE = 1920;

function outputSize(blueprint: Blueprint, first: MediaInfo): { width: number; height: number } {
  const given = blueprint.output_config.resolution;
  if (given !== undefined) return { width: given.width, height: given.height };
  const long = Math.max(first.displayWidth, first.displayHeight);
  const scale = long > MAX_LONG_SIDE ? MAX_LONG_SIDE / long : 1;
  return { width: evenSize(first.displayWidth * scale), height: evenSize(first.displayHeight * scale) };
}

function fmt(seconds: number): string {
  return seconds.toFixed(2);
}

export function moveName(index: number, clipId: string): string {
  return `move ${index + 1} (${clipId})`;
}

/** Builds the frame-exact plan. Throws MEDIA_INVALID for a clip without video or a song without audio. */
export function planRender(
  blueprint: Blueprint,
  clips: ReadonlyMap<string, MediaInfo>,
  audio: MediaInfo,
): RenderPlan {
  const config = blueprint.output_config;
  const fps = config.frame_rate;
  const warnings: string[] = [...blueprint.warnings];
  const moves = blueprint.moves;
  if (moves.length === 0) throw new JobError("moves array cannot be empty", { code: "INVALID_BLUEPRINT" });

  const infoOf = (key: string): MediaInfo => {
    const info = clips.get(key);
    if (info === undefined) throw new JobError(`No media information for clip ${key}`, { code: "INTERNAL" });
    if (!info.hasVideo) throw new JobError(`Clip ${key} has no video stream`, { code: "MEDIA_INVALID" });
    return info;
  };
  if (!audio.hasAudio) {
    throw new JobError(`Song ${blueprint.audio_path} has no audio stream`, { code: "MEDIA_INVALID" });
  }
  const { width, height } = outputSize(blueprint, infoOf(moves[0]!.video_path));

  const sources: Record<string, SourcePlan> = {};
  for (const move of moves) {
    const info = infoOf(move.video_path);
    sources[move.video_path] ??= {
      demuxer: info.demuxer,
      duration: info.duration,
      fit: fitInto(info.displayWidth, info.displayHeight, width, height),
      fps: info.fps,
      variableFrameRate: info.variableFrameRate,
    };
  }

  // Frame boundaries: a_i = round(start_i·F); each move ends where the next starts, the last at
  // round(total·F), so the moves tile the output exactly whatever the rounding.
  const totalFrames = frameAt(blueprint.total_duration, fps);
  const starts = moves.map((move) => frameAt(move.start_time, fps));
  const frames: MoveFrames[] = moves.map((move, i) => ({
    clipId: move.clip_id,
    key: move.video_path,
    startFrame: starts[i]!,
    endFrame: i + 1 < moves.length ? starts[i + 1]! : totalFrames,
    transitionFrames: 0,
  }));
  frames.forEach((move, i) => {
    if (move.endFrame - move.startFrame < 1) {
      throw new JobError(`moves[${i}] lasts less than one frame at ${fps} fps`, {
        code: "INVALID_BLUEPRINT",
      });
    }
  });
  const length = (i: number) => frames[i]!.endFrame - frames[i]!.startFrame;

  // Transition windows in frames, clamped to half of the shorter neighbouring move.
  moves.forEach((move, i) => {
    if (move.transition_type === "cut") return;
    const seconds = move.transition_duration ?? config.transition_duration;
    const wanted = frameAt(seconds, fps);
    const limit = Math.floor((i === 0 ? length(0) : Math.min(length(i - 1), length(i))) / 2);
    const window = Math.min(wanted, limit);
    if (window < wanted) {
      warnings.push(
        `Transition into ${moveName(i, move.clip_id)}: ${fmt(seconds)} s window shortened to ${fmt(window / fps)} s (half of the shorter neighbouring move)`,
      );
    }
    if (window === 0 && wanted > 0 && limit === 0) {
      warnings.push(`Transition into ${moveName(i, move.clip_id)} dropped: the move is too short`);
    }
    frames[i]!.transitionFrames = window;
  });

  // Footage: move i shows its source from trim_start; warn when the source runs out (last frame held).
  moves.forEach((move, i) => {
    const info = infoOf(move.video_path);
    const needed = move.trim_start + length(i) / fps;
    const held = needed - info.duration;
    if (held > 0.5 / fps) {
      warnings.push(
        `${moveName(i, move.clip_id)}: ${move.video_path} is ${fmt(info.duration)} s long but the move needs ${fmt(needed)} s from trim_start ${fmt(move.trim_start)} s; its last frame is held for ${fmt(held)} s`,
      );
    }
  });

  const pieces: Piece[] = [];
  moves.forEach((move, i) => {
    const own = frames[i]!;
    const next = frames[i + 1];
    const outgoingWindow = next?.transitionFrames ?? 0;
    const bodyFrames = length(i) - outgoingWindow;
    const body: BodyPiece = {
      kind: "body",
      move: i,
      clipId: move.clip_id,
      startFrame: own.startFrame,
      frames: bodyFrames,
      source: { key: move.video_path, start: move.trim_start, frames: bodyFrames },
    };
    if (i === 0 && own.transitionFrames > 0 && move.transition_type !== "cut") {
      body.opening = { type: move.transition_type, frames: own.transitionFrames };
    }
    pieces.push(body);
    if (next === undefined || outgoingWindow === 0) return;
    const incoming = moves[i + 1]!;
    const type = incoming.transition_type;
    if (type === "cut") return;
    // The window holds the outgoing move's last frames and the incoming move's pre-roll (source
    // frames just before its trim_start). A dip or a rotation shows only the first half of one, the
    // second of the other.
    const window = outgoingWindow;
    const half = HALF_WINDOW_TYPES.has(type);
    const outgoingFrames = half ? Math.floor(window / 2) : window;
    const incomingFrames = half ? window - outgoingFrames : window;
    pieces.push({
      kind: "transition",
      move: i + 1,
      clipId: incoming.clip_id,
      type,
      startFrame: next.startFrame - window,
      frames: window,
      outgoing: { key: move.video_path, start: move.trim_start + bodyFrames / fps, frames: outgoingFrames },
      incoming: {
        key: incoming.video_path,
        start: incoming.trim_start - incomingFrames / fps,
        frames: incomingFrames,
      },
    });
  });

  const duration = totalFrames / fps;
  if (audio.duration < duration - 0.5 / fps) {
    warnings.push(
      `The song ${blueprint.audio_path} is ${fmt(audio.duration)} s long but the video lasts ${fmt(duration)} s; silence fills the rest`,
    );
  }

  return {
    width,
    height,
    fps,
    totalFrames,
    duration,
    format: config.output_format,
    moves: frames,
    pieces,
    sources,
    video: {
      codec: config.video_codec,
      preset: config.preset,
      crf: config.crf,
      ...(config.video_bitrate === undefined ? {} : { bitrate: config.video_bitrate }),
    },
    audio: {
      key: blueprint.audio_path,
      demuxer: audio.demuxer,
      codec: config.audio_codec,
      bitrate: config.audio_bitrate,
      sampleRate: 48_000,
      channels: 2,
      duration,
      songDuration: audio.duration,
      fade: config.fade_duration,
      normalize: config.normalize_audio,
    },
    warnings,
  };
}
