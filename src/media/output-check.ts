/**
 * Verification by construction (pure, no I/O): what the renderer knows about the output it made —
 * which frame ranges it encoded, which it stream-copied out of verified cache entries, where the
 * pieces join — turned into packet-level checks of the whole output and the few ranges worth
 * decoding (docs/decisions/clip-cache.md, "Verification"). `src/media/verify.ts` runs them.
 *
 * The promise stays "the output decodes without errors": every frame this run encoded is decoded,
 * and so is every join (a few frames after it, and before it unless those are a copy of an entry that
 * was decoded whole when built); a copied body is not decoded again but checked packet by packet to
 * be the very bytes of the entry it came from, and that entry was checked (sha256 against its
 * sidecar, its stream probed) before the render used it.
 */
import type { AssemblyItem } from "./assembly.js";
import type { RenderPlan } from "./plan.js";

/** One run of output frames as the renderer made it. */
export interface OutputPiece {
  startFrame: number;
  frames: number;
  /** True when this run's FFmpeg encoded these frames (decoded by the check); false for stream copies. */
  encoded: boolean;
  /** A stream copy: output frame `startFrame + i` must be the entry's packet `fromFrame + i`, byte for byte. */
  copy?: {
    key: string;
    fromFrame: number;
    packetHashes: readonly string[];
    extradataHash?: string;
    /** The entry decoded without an error when it was built (its sidecar says `decoded`). */
    decodeVerified?: boolean;
  };
}

/** A video or audio packet as ffprobe lists it (decode order). */
export interface ProbedPacket {
  stream: "video" | "audio";
  /** Seconds. */
  pts: number;
  dts: number;
  keyframe: boolean;
  /** `-show_data_hash` of the payload (absent when not asked for). */
  hash?: string;
}

/** Frames decoded after every join, and before it unless they are a decode-verified copy. */
export const JOIN_MARGIN_FRAMES = 3;

/** The segment path: every piece of the plan is encoded by the run. */
export function segmentOutputPieces(plan: Pick<RenderPlan, "pieces">): OutputPiece[] {
  return plan.pieces.map((piece) => ({ startFrame: piece.startFrame, frames: piece.frames, encoded: true }));
}

/** The clip-cache assembly: re-encoded pieces, and stream copies of the entries' packets. */
export function assemblyOutputPieces(
  items: readonly AssemblyItem[],
  entries: ReadonlyMap<
    string,
    { packetHashes?: readonly string[]; extradataHash?: string; decodeVerified?: boolean }
  >,
): OutputPiece[] {
  return items.map((item) => {
    if (item.kind === "encode") return { startFrame: item.startFrame, frames: item.frames, encoded: true };
    const entry = entries.get(item.key);
    const hashes = entry?.packetHashes;
    const extradata = entry?.extradataHash === undefined ? {} : { extradataHash: entry.extradataHash };
    return {
      startFrame: item.startFrame,
      frames: item.frames,
      // Without the entry's packet hashes a copied range cannot be vouched for: decode it.
      encoded: hashes === undefined,
      ...(hashes === undefined
        ? {}
        : {
            copy: {
              key: item.key,
              fromFrame: item.fromFrame,
              packetHashes: hashes,
              ...extradata,
              decodeVerified: entry?.decodeVerified === true,
            },
          }),
    };
  });
}

/** Half-open frame range `[from, to)`. */
export interface FrameRange {
  from: number;
  to: number;
}

/**
 * Problems found in the output's packets against the pieces (empty when none; the frame count is
 * checked by the caller): decode timestamps strictly increasing, presentation timestamps contiguous on the frame grid,
 * a keyframe at every piece start, copied frames equal to their entry's packets, audio present with
 * increasing timestamps. `fps` is the plan's rate.
 */
export function checkPackets(
  packets: readonly ProbedPacket[],
  pieces: readonly OutputPiece[],
  totalFrames: number,
  fps: number,
  /** The output video's decoder configuration hash (SPS/PPS), when known. */
  extradataHash?: string,
): string[] {
  const problems: string[] = [];
  // Copied packets decode as in their entry only under the entry's SPS/PPS.
  const otherConfig = pieces.find(
    (piece) =>
      piece.copy?.extradataHash !== undefined &&
      extradataHash !== undefined &&
      piece.copy.extradataHash !== extradataHash,
  );
  if (otherConfig !== undefined) {
    problems.push(
      `its decoder configuration differs from that of the cache entry of ${otherConfig.copy!.key}, copied at frame ${otherConfig.startFrame}`,
    );
  }
  const video = packets.filter((p) => p.stream === "video");
  const audio = packets.filter((p) => p.stream === "audio");
  if (audio.length === 0) problems.push("it has no audio packets");
  const frame = 1 / fps;
  const firstBad = (list: readonly ProbedPacket[], what: "dts" | "pts") =>
    list.findIndex((p, i) => i > 0 && !(p[what] > list[i - 1]![what]));
  const badDts = firstBad(video, "dts");
  if (badDts !== -1) problems.push(`video decode timestamps go backwards at packet ${badDts}`);
  const badAudio = firstBad(audio, "dts");
  if (badAudio !== -1) problems.push(`audio timestamps go backwards at packet ${badAudio}`);

  // Presentation order: frame n of the output.
  const frames = [...video].sort((a, b) => a.pts - b.pts);
  if (frames.length > 0 && Math.abs(frames[0]!.pts) > frame / 2) {
    problems.push(`the first frame is shown at ${frames[0]!.pts.toFixed(3)} s, not 0`);
  }
  for (let n = 1; n < frames.length; n++) {
    const step = frames[n]!.pts - frames[n - 1]!.pts;
    // Joins may shift a timestamp by under a millisecond (mp4 timescales); a gap or a repeat is a frame.
    if (Math.abs(step - frame) > frame / 2) {
      problems.push(
        `frames ${n - 1} and ${n} are ${(step * 1000).toFixed(1)} ms apart, expected ${(frame * 1000).toFixed(1)} ms`,
      );
      break;
    }
  }
  if (video.length !== totalFrames) return problems;

  const missingKeyframes = pieces
    .filter((piece) => piece.frames > 0 && frames[piece.startFrame]?.keyframe !== true)
    .map((piece) => piece.startFrame);
  if (missingKeyframes.length > 0) {
    problems.push(
      `frame${missingKeyframes.length === 1 ? "" : "s"} ${missingKeyframes.slice(0, 5).join(", ")}${missingKeyframes.length > 5 ? ", …" : ""} start${missingKeyframes.length === 1 ? "s" : ""} a piece but ${missingKeyframes.length === 1 ? "is not a keyframe" : "are not keyframes"}`,
    );
  }
  for (const piece of pieces) {
    if (piece.copy === undefined) continue;
    for (let i = 0; i < piece.frames; i++) {
      const expected = piece.copy.packetHashes[piece.copy.fromFrame + i];
      const actual = frames[piece.startFrame + i]?.hash;
      if (expected === undefined || actual !== expected) {
        problems.push(
          `frame ${piece.startFrame + i} is not the packet it was copied from (frame ${piece.copy.fromFrame + i} of the cache entry of ${piece.copy.key})`,
        );
        break;
      }
    }
  }
  return problems;
}

/**
 * The frame ranges to decode, merged where they touch (each is later widened back to the keyframe at
 * or before its start, so the decoder starts clean):
 * - every encoded piece, whole;
 * - `margin` frames after every join, always (a piece starts on a keyframe, checked at packet level,
 *   so these need no widening), and likewise the video's first frames;
 * - `margin` frames before every join, and the video's last frames, except those in a stream copy of
 *   a decode-verified entry: their bytes are checked equal to the entry's packets, under the entry's
 *   SPS/PPS, from an IDR on; the entry decoded whole without an error when it was built; and the next
 *   piece starts with an IDR, so nothing after the join depends on them. Decoding them again would
 *   only repeat that decode — and cost a whole GOP each, since they need widening to their keyframe.
 */
export function decodeRanges(
  pieces: readonly OutputPiece[],
  totalFrames: number,
  margin = JOIN_MARGIN_FRAMES,
): FrameRange[] {
  const raw: FrameRange[] = [];
  const clamp = (n: number) => Math.min(totalFrames, Math.max(0, n));
  const verified = pieces.filter((piece) => piece.copy?.decodeVerified === true);
  /** `[from, to)` less the frames of decode-verified copies (a few frames: one at a time). */
  const unlessVerifiedCopy = (from: number, to: number) => {
    for (let frame = from; frame < to; frame++) {
      const inVerified = verified.some((p) => frame >= p.startFrame && frame < p.startFrame + p.frames);
      if (!inVerified) raw.push({ from: frame, to: frame + 1 });
    }
  };
  pieces.forEach((piece, i) => {
    if (piece.frames <= 0) return;
    if (piece.encoded) raw.push({ from: piece.startFrame, to: piece.startFrame + piece.frames });
    if (i > 0) {
      raw.push({ from: clamp(piece.startFrame), to: clamp(piece.startFrame + margin) });
      unlessVerifiedCopy(clamp(piece.startFrame - margin), clamp(piece.startFrame));
    }
  });
  // The video's first and last frames are boundaries too (and a video of one copied piece still has them).
  raw.push({ from: 0, to: clamp(margin) });
  unlessVerifiedCopy(clamp(totalFrames - margin), totalFrames);
  raw.sort((a, b) => a.from - b.from);
  const merged: FrameRange[] = [];
  for (const range of raw) {
    if (range.to <= range.from) continue;
    const last = merged.at(-1);
    if (last !== undefined && range.from <= last.to) last.to = Math.max(last.to, range.to);
    else merged.push({ ...range });
  }
  return merged;
}

/** Moves each range's start back to the keyframe at or before it (frames in presentation order). */
export function fromKeyframes(ranges: readonly FrameRange[], keyframes: readonly boolean[]): FrameRange[] {
  const widened = ranges.map((range) => {
    let from = range.from;
    while (from > 0 && keyframes[from] !== true) from -= 1;
    return { from, to: range.to };
  });
  const merged: FrameRange[] = [];
  for (const range of widened) {
    const last = merged.at(-1);
    if (last !== undefined && range.from <= last.to) last.to = Math.max(last.to, range.to);
    else merged.push({ ...range });
  }
  return merged;
}

/** Frames a set of ranges covers. */
export function rangeFrames(ranges: readonly FrameRange[]): number {
  return ranges.reduce((sum, r) => sum + (r.to - r.from), 0);
}

/**
 * Problems with an output whose audio is the packets of an already-verified encode (the song cache):
 * every audio packet, in order, must be that encode's packet (`hashes`, `-show_data_hash SHA256`).
 */
export function checkCopiedAudio(packets: readonly ProbedPacket[], hashes: readonly string[]): string[] {
  const audio = packets.filter((p) => p.stream === "audio");
  if (audio.length > hashes.length) {
    return [`it has ${audio.length} audio packets, more than the ${hashes.length} of the encoded song`];
  }
  const at = audio.findIndex((packet, i) => packet.hash === undefined || packet.hash !== hashes[i]);
  return at === -1 ? [] : [`audio packet ${at} is not the packet it was copied from (the cached song's)`];
}
