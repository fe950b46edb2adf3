/**
 * Clip-cache assembly (pure): the render plan turned into stream copies out of normalised cache
 * entries plus the few pieces that must be re-encoded. No I/O; `src/job/clip-cache.ts` fills the
 * cache and runs what this returns (docs/decisions/clip-cache.md).
 *
 * A cache entry is a whole source clip normalised exactly as a body piece would be (`fps=F` from
 * t = 0, square pixels, fit, pad, `setsar=1`, yuv420p) and encoded with the *cache profile*: the
 * job's x264 settings plus a fixed GOP (an IDR every `gop` frames, no B-frames, no scene cuts,
 * stitchable headers). Entry frame j shows the source at j/F. Every re-encoded piece of an assembly
 * uses the same encoder options, so entries and pieces share SPS/PPS and join with `-c copy`.
 *
 * A move body = entry frames [j0, j0 + n): re-encoded from j0 up to the first keyframe at or after
 * the end of any opening transition (the *cut-in*), stream-copied from that keyframe up to the entry's end or
 * the body's end, and re-encoded again for frames past the entry's last one (the *hold*). Without
 * B-frames any end frame is clean. Transition windows are re-encoded from the entries.
 *
 * Timing: a span's source time maps to the nearest entry frame (`round(t·F)`): a `trim_start`
 * that is not on the output frame grid may show a frame up to half a frame away from the segment
 * path's choice. Frame counts and move starts are exactly those of the plan (SPEC §3.3).
 */
import { createHash } from "node:crypto";
import { JobError } from "../errors.js";
import { COMMON, slowness, watchdogMs } from "./commands.js";
import { type Demuxer, pinnedInput } from "./containers.js";
import {
  normaliseChain,
  rateString,
  type SourceFit,
  type VideoEncoding,
  videoEncoderArgs,
} from "./filters.js";
import { frameAt, type Piece, type RenderPlan, type SourceSpan } from "./plan.js";

/** Bumped whenever the entry's content or encoding changes: old entries then simply miss. */
export const CACHE_ENGINE_VERSION = 1;
/** Frames between keyframes in an entry (0.5 s at 30 fps): the cut-in is at most this long. */
export const CACHE_GOP = 15;

/** Everything an entry's bytes depend on besides the source. */
export interface CacheProfile {
  engine: number;
  width: number;
  height: number;
  /** Output rate as FFmpeg's rational ("30/1"). */
  rate: string;
  codec: "libx264";
  preset: VideoEncoding["preset"];
  crf: number;
  bitrate?: string;
  gop: number;
  pixFmt: "yuv420p";
}

/**
 * The one place that says which codecs the clip cache serves: x264 only (entries and re-encoded
 * pieces must share SPS/PPS to join by stream copy); other codecs encode every piece from the source.
 */
export function cacheSupportsCodec(codec: VideoEncoding["codec"]): boolean {
  return codec === "libx264";
}

/** Whether the plan can be assembled from cache entries. */
export function cacheSupported(plan: Pick<RenderPlan, "video">): boolean {
  return cacheSupportsCodec(plan.video.codec);
}

export function cacheProfile(plan: RenderPlan, gop = CACHE_GOP): CacheProfile {
  if (!cacheSupported(plan)) {
    throw new JobError(`No clip cache for ${plan.video.codec}`, { code: "INTERNAL" });
  }
  return {
    engine: CACHE_ENGINE_VERSION,
    width: plan.width,
    height: plan.height,
    rate: rateString(plan.fps),
    codec: "libx264",
    preset: plan.video.preset,
    crf: plan.video.crf,
    ...(plan.video.bitrate === undefined ? {} : { bitrate: plan.video.bitrate }),
    gop,
    pixFmt: "yuv420p",
  };
}

/** A short stable id of a profile, used as the entries' directory name. */
export function profileId(profile: CacheProfile): string {
  const canonical = JSON.stringify(Object.entries(profile).sort(([a], [b]) => a.localeCompare(b)));
  const hash = createHash("sha256").update(canonical).digest("hex").slice(0, 16);
  return `${profile.width}x${profile.height}-${profile.rate.replace("/", "_")}-${hash}`;
}

/** The encoder options of entries and of every re-encoded piece of an assembly. */
export function cacheEncoderArgs(video: VideoEncoding, gop = CACHE_GOP): string[] {
  return [
    ...videoEncoderArgs(video, "mp4"),
    "-g",
    String(gop),
    "-keyint_min",
    String(gop),
    "-sc_threshold",
    "0",
    "-bf",
    "0",
    "-x264-params",
    "stitchable=1",
  ];
}

/** Builds one entry: the whole source, normalised at the profile's size and rate. */
export function entryBuildArgs(
  source: { file: string; demuxer: Demuxer; fit: SourceFit; duration: number },
  plan: RenderPlan,
  output: string,
  gop = CACHE_GOP,
): { args: string[]; timeoutMs: number } {
  const chain = [
    `fps=${rateString(plan.fps)}:start_time=0`,
    ...normaliseChain(source.fit, plan.width, plan.height),
  ];
  return {
    args: [
      ...COMMON,
      "-threads",
      "1",
      ...pinnedInput(source.file, source.demuxer),
      "-filter_complex_threads",
      "1",
      "-filter_complex",
      `[0:v:0]${chain.join(",")}[v]`,
      "-map",
      "[v]",
      ...cacheEncoderArgs(plan.video, gop),
      "-an",
      "-sn",
      "-dn",
      "-map_metadata",
      "-1",
      "-f",
      "mp4",
      output,
    ],
    timeoutMs: watchdogMs(source.duration, plan.width * plan.height, slowness(plan.video)),
  };
}

/** What the assembly needs of an entry: its frame count (frame j = source time j/F). */
export interface EntryFrames {
  frames: number;
}

export type AssemblyRole = "body" | "cut-in" | "hold" | "transition";

/** Output frames `[startFrame, startFrame + frames)` re-encoded from entries. */
export interface EncodeItem {
  kind: "encode";
  role: AssemblyRole;
  startFrame: number;
  frames: number;
  /** The piece, its spans snapped to entry frames. */
  piece: Piece;
}

/** Output frames `[startFrame, startFrame + frames)` = entry frames `[fromFrame, toFrame)`, stream-copied. */
export interface CopyItem {
  kind: "copy";
  move: number;
  key: string;
  startFrame: number;
  frames: number;
  /** A keyframe of the entry (multiple of the GOP). */
  fromFrame: number;
  toFrame: number;
}

export type AssemblyItem = EncodeItem | CopyItem;

function snap(span: SourceSpan, fps: number): SourceSpan {
  return { ...span, start: frameAt(span.start, fps) / fps };
}

/**
 * Splits the plan's pieces into stream copies and re-encodes, in timeline order. The items tile
 * the output exactly (their frames sum to `plan.totalFrames`).
 */
export function planAssembly(
  plan: RenderPlan,
  entries: ReadonlyMap<string, EntryFrames>,
  gop = CACHE_GOP,
): AssemblyItem[] {
  const fps = plan.fps;
  const entryOf = (key: string): EntryFrames => {
    const entry = entries.get(key);
    if (entry === undefined || !(entry.frames > 0)) {
      throw new JobError(`No cache entry for ${key}`, { code: "INTERNAL" });
    }
    return entry;
  };
  const items: AssemblyItem[] = [];
  for (const piece of plan.pieces) {
    if (piece.kind === "transition") {
      entryOf(piece.outgoing.key);
      entryOf(piece.incoming.key);
      items.push({
        kind: "encode",
        role: "transition",
        startFrame: piece.startFrame,
        frames: piece.frames,
        piece: { ...piece, outgoing: snap(piece.outgoing, fps), incoming: snap(piece.incoming, fps) },
      });
      continue;
    }
    const entry = entryOf(piece.source.key);
    const j0 = frameAt(piece.source.start, fps);
    const n = piece.frames;
    // Real entry frames the body shows; past them the last frame is held.
    const copyEnd = Math.max(j0, Math.min(j0 + n, entry.frames));
    const openingEnd = j0 + (piece.opening?.frames ?? 0);
    const keyframe = Math.ceil(Math.max(j0, openingEnd) / gop) * gop;
    const body = (startFrame: number, from: number, frames: number, role: AssemblyRole): EncodeItem => {
      const fade =
        piece.opening !== undefined && startFrame === piece.startFrame ? { opening: piece.opening } : {};
      return {
        kind: "encode",
        role,
        startFrame,
        frames,
        piece: {
          kind: "body",
          move: piece.move,
          clipId: piece.clipId,
          startFrame,
          frames,
          source: { key: piece.source.key, start: from / fps, frames },
          ...fade,
        },
      };
    };
    if (keyframe >= copyEnd) {
      items.push(body(piece.startFrame, j0, n, "body"));
      continue;
    }
    if (keyframe > j0) items.push(body(piece.startFrame, j0, keyframe - j0, "cut-in"));
    const copyStart = piece.startFrame + (keyframe - j0);
    items.push({
      kind: "copy",
      move: piece.move,
      key: piece.source.key,
      startFrame: copyStart,
      frames: copyEnd - keyframe,
      fromFrame: keyframe,
      toFrame: copyEnd,
    });
    const held = j0 + n - copyEnd;
    if (held > 0) items.push(body(piece.startFrame + (copyEnd - j0), copyEnd, held, "hold"));
  }
  return items;
}
