/**
 * The FFmpeg arguments of a render (pure): each piece of the timeline (`plan.ts`) turned into the
 * exact argument list that encodes it, the song's run and the stream-copy join. No I/O; `--dry-run`
 * prints what this returns, and the renderer runs it.
 */
import type { AudioCodec, OutputFormat } from "../blueprint/types.js";
import { JobError } from "../errors.js";
import { type Demuxer, pinnedInput } from "./containers.js";
import {
  audioEncoderArgs,
  frameIndexExpr,
  secs,
  songFilter,
  spanFilter,
  turnFilter,
  type VideoEncoding,
  videoEncoderArgs,
  wipeFilters,
  wipeOpeningFilters,
  ZOOM_FACTOR,
  zoomFilter,
} from "./filters.js";
import { type BodyPiece, moveName, type Piece, type RenderPlan, type SourceSpan } from "./plan.js";

export type FadeColour = "black" | "white";

export interface RenderFiles {
  /** Storage key → local file. */
  inputs: ReadonlyMap<string, string>;
  audio: string;
  /** Where pieces are written (created by the renderer). */
  workDir: string;
  output: string;
}

export interface RenderStep {
  id: string;
  kind: "piece" | "audio" | "final";
  /** What is being rendered, for users (storage keys, never temp paths). */
  label: string;
  args: string[];
  /** Output video frames this step encodes (progress); 0 for the audio and final steps. */
  frames: number;
  /** Watchdog for this step, proportional to its work. */
  timeoutMs: number;
}

export interface RenderSteps {
  /** Independent runs (video pieces and the song), in timeline order; run them in any order. */
  pieces: RenderStep[];
  /** The concat demuxer's list, written before the final step. */
  concatList: { file: string; content: string };
  /** Joins the pieces and the encoded song by stream copy. */
  final: RenderStep;
  /** Intermediate files the steps write (pieces and the encoded song). */
  outputs: string[];
}

/** Flags every run shares: quiet except errors, progress lines on stderr, overwrite, no stdin. */
export const COMMON = ["-hide_banner", "-nostdin", "-v", "error", "-stats", "-y"];

export const MUXERS: Record<OutputFormat, string> = { mp4: "mp4", mov: "mov", mkv: "matroska", webm: "webm" };

/** The demuxer that reads back a file the job wrote in each format. */
export const DEMUXERS: Record<OutputFormat, Demuxer> = {
  mp4: "mov",
  mov: "mov",
  mkv: "matroska",
  webm: "matroska",
};

/** How much slower than x264 veryfast an encode may be, for watchdog budgets. */
export function slowness(video: VideoEncoding): number {
  const preset: Record<VideoEncoding["preset"], number> = {
    ultrafast: 1,
    superfast: 1,
    veryfast: 1,
    faster: 1,
    fast: 1.5,
    medium: 2,
    slow: 4,
    slower: 8,
    veryslow: 16,
  };
  return preset[video.preset] * (video.codec === "libx264" ? 1 : 4);
}

/** 30 s + 10 s per second of work, scaled by picture size and encoder speed. Generous on purpose. */
export function watchdogMs(workSeconds: number, pixels: number, factor: number): number {
  return Math.ceil(30_000 + 10_000 * workSeconds * Math.max(1, pixels / (1280 * 720)) * factor);
}

export function pieceName(index: number, format: OutputFormat): string {
  return `piece-${String(index).padStart(4, "0")}.${format}`;
}

export function audioName(format: OutputFormat, codec: AudioCodec): string {
  // mp4/mov hold AAC, MP3 and Opus; webm/mkv hold Opus (webm is validated to carry it).
  return `audio.${format === "mov" ? "mp4" : format === "webm" && codec !== "libopus" ? "mkv" : format}`;
}

export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? `${dir}${name}` : `${dir}/${name}`;
}

export function pieceLabel(piece: Piece, plan: RenderPlan): string {
  if (piece.kind === "body")
    return `rendering ${moveName(piece.move, piece.clipId)} from ${piece.source.key}`;
  const kind = piece.type.replace("_", " ");
  return `rendering the ${kind} into ${moveName(piece.move, piece.clipId)} (${plan.moves[piece.move]!.key})`;
}

function fadeFilter(type: "in" | "out", frames: number, colour: FadeColour): string {
  return `fade=t=${type}:s=0:n=${frames}${colour === "white" ? ":c=white" : ""}`;
}

/**
 * A first move's body (`chain` on input 0) with its opening: the transition from nothing over its
 * first `frames`. Fades (and `crossfade`, `zoom_in`: there is nothing to zoom into) fade in from
 * black (white for `fade_white`); a wipe reveals the move over black; `zoom_out` fades in from
 * black while settling from ZOOM_FACTOR to full frame; `rotate` turns in from a quarter turn
 * anticlockwise (as the second half of a rotate window), black behind. Frames after the opening
 * are untouched.
 */
function openingGraph(
  chain: string,
  opening: NonNullable<BodyPiece["opening"]>,
  plan: RenderPlan,
  labels: GraphLabels,
): string {
  const { type, frames } = opening;
  const { input, label, out } = labels;
  const k = frameIndexExpr(plan.fps);
  const during = `lt(${k},${frames})`;
  switch (type) {
    case "wipe_left":
    case "wipe_right": {
      const wipe = wipeOpeningFilters(type, frames, plan.fps, plan.width, plan.height);
      return `${wipe.source}${label("black")};${input(0)}${chain}${label("move")};${label("move")}${label("black")}${wipe.overlay}${out}`;
    }
    case "zoom_out": {
      const scale = `${ZOOM_FACTOR}-${ZOOM_FACTOR - 1}*(in-1)/${frames}`;
      return `${input(0)}${chain},${zoomFilter(scale, during)},${fadeFilter("in", frames, "black")}${out}`;
    }
    case "rotate": {
      const turn = turnFilter(`PI/2*(in/${frames}-1)`, plan.width, plan.height, during);
      return `${input(0)}${chain},${turn}${out}`;
    }
    case "crossfade":
    case "fade_black":
    case "fade_white":
    case "zoom_in":
      return `${input(0)}${chain},${fadeFilter("in", frames, type === "fade_white" ? "white" : "black")}${out}`;
  }
}

/**
 * The two halves of a dip or a rotation: the outgoing move over `outgoing` frames, the incoming one
 * over `incoming` frames. A dip fades out to its colour and in from it; `rotate` turns the outgoing
 * move clockwise from upright to a quarter turn (first frame upright), then turns the incoming one
 * on from a quarter turn anticlockwise to upright (last frame upright); each picture is scaled
 * down as it turns so that it stays whole inside the frame, black around it.
 */
function halfFilters(
  type: "fade_black" | "fade_white" | "rotate",
  outgoing: number,
  incoming: number,
  plan: Pick<RenderPlan, "width" | "height">,
): { outgoing: string; incoming: string } {
  if (type === "rotate") {
    return {
      outgoing: turnFilter(`PI/2*(in-1)/${Math.max(outgoing, 1)}`, plan.width, plan.height),
      incoming: turnFilter(`PI/2*(in/${incoming}-1)`, plan.width, plan.height),
    };
  }
  const colour: FadeColour = type === "fade_white" ? "white" : "black";
  return { outgoing: fadeFilter("out", outgoing, colour), incoming: fadeFilter("in", incoming, colour) };
}

/** Encoder options and muxer of a piece (default: the plan's own, as `videoEncoderArgs` gives them). */
export interface PieceEncoding {
  encoderArgs: string[];
  muxer: string;
}

/**
 * Pad labels of one piece's filtergraph: its inputs are FFmpeg inputs `first`, `first + 1`, …; its
 * own intermediate pads carry `tag`, so several pieces can share one filtergraph; `out` is its result.
 */
interface GraphLabels {
  input: (i: number) => string;
  label: (name: string) => string;
  out: string;
}

function graphLabels(first: number, tag: string, out: string): GraphLabels {
  return { input: (i) => `[${first + i}:v:0]`, label: (name) => `[${name}${tag}]`, out };
}

/** One re-encoded piece as FFmpeg inputs and a filtergraph producing `labels.out`. */
interface PieceGraph {
  /** Each input's options, ending in `-i file`. */
  inputs: string[][];
  graph: string;
  /** How far its inputs seek (watchdog budget). */
  seek: number;
}

function pieceGraph(
  piece: Piece,
  plan: RenderPlan,
  files: Pick<RenderFiles, "inputs">,
  labels: GraphLabels,
): PieceGraph {
  const { input, label, out: result } = labels;
  const fileOf = (key: string): string => {
    const file = files.inputs.get(key);
    if (file === undefined) throw new JobError(`No local file for clip ${key}`, { code: "INTERNAL" });
    return file;
  };
  const span = (s: SourceSpan) => {
    const source = plan.sources[s.key];
    if (source === undefined) throw new JobError(`No source plan for clip ${s.key}`, { code: "INTERNAL" });
    return spanFilter(
      s,
      {
        file: fileOf(s.key),
        demuxer: source.demuxer,
        duration: source.duration,
        fit: source.fit,
        ...(source.onGrid === true ? { onGrid: true } : {}),
      },
      plan.fps,
      plan.width,
      plan.height,
    );
  };
  const inputs: string[][] = [];
  let graph: string;
  let seek = 0;
  if (piece.kind === "body") {
    const body = span(piece.source);
    inputs.push(body.inputArgs);
    seek = body.seekSeconds;
    graph =
      piece.opening === undefined
        ? `${input(0)}${body.chain}${result}`
        : openingGraph(body.chain, piece.opening, plan, labels);
  } else if (piece.type === "crossfade" || piece.type === "zoom_in" || piece.type === "zoom_out") {
    // The incoming pre-roll gets one extra leading frame so its opacity runs (k+1)/(D+1): neither
    // end of the window repeats a pure frame of either move; the extra frame is then dropped.
    // zoom_in magnifies the outgoing move from 1 towards ZOOM_FACTOR at the same pace, zoom_out the
    // incoming one from ZOOM_FACTOR towards 1 (`in` is 1 on the window's first frame).
    const out = span(piece.outgoing);
    const extra = { ...piece.incoming, start: piece.incoming.start - 1 / plan.fps, frames: piece.frames + 1 };
    const inc = span(extra);
    inputs.push(out.inputArgs, inc.inputArgs);
    seek = Math.max(out.seekSeconds, inc.seekSeconds);
    const progress = `in/${piece.frames + 1}`;
    const outgoingZoom = piece.type === "zoom_in" ? `,${zoomFilter(`1+${ZOOM_FACTOR - 1}*${progress}`)}` : "";
    const incomingZoom =
      piece.type === "zoom_out" ? `,${zoomFilter(`${ZOOM_FACTOR}-${ZOOM_FACTOR - 1}*${progress}`)}` : "";
    graph = [
      `${input(0)}${out.chain}${outgoingZoom}${label("a")}`,
      `${input(1)}${inc.chain},format=yuva420p,fade=t=in:s=0:n=${piece.frames + 1}:alpha=1,trim=start_frame=1,setpts=N/FRAME_RATE/TB${incomingZoom}${label("b")}`,
      `${label("a")}${label("b")}overlay=format=yuv420:eof_action=endall,format=yuv420p,setpts=N/FRAME_RATE/TB${result}`,
    ].join(";");
  } else if (piece.type === "wipe_left" || piece.type === "wipe_right") {
    const out = span(piece.outgoing);
    const inc = span(piece.incoming);
    inputs.push(out.inputArgs, inc.inputArgs);
    seek = Math.max(out.seekSeconds, inc.seekSeconds);
    const wipe = wipeFilters(piece.type, piece.frames, plan.fps, plan.width, plan.height);
    graph = [
      `${input(0)}${out.chain}${label("a")}`,
      `${input(1)}${inc.chain},${wipe.incoming}${label("b")}`,
      `${label("a")}${label("b")}${wipe.overlay},setpts=N/FRAME_RATE/TB${result}`,
    ].join(";");
  } else {
    const halves = halfFilters(piece.type, piece.outgoing.frames, piece.incoming.frames, plan);
    const inc = span(piece.incoming);
    if (piece.outgoing.frames === 0) {
      inputs.push(inc.inputArgs);
      seek = inc.seekSeconds;
      graph = `${input(0)}${inc.chain},${halves.incoming}${result}`;
    } else {
      const out = span(piece.outgoing);
      inputs.push(out.inputArgs, inc.inputArgs);
      seek = Math.max(out.seekSeconds, inc.seekSeconds);
      graph = [
        `${input(0)}${out.chain},${halves.outgoing}${label("a")}`,
        `${input(1)}${inc.chain},${halves.incoming}${label("b")}`,
        `${label("a")}${label("b")}concat=n=2:v=1:a=0,setpts=N/FRAME_RATE/TB${result}`,
      ].join(";");
    }
  }
  return { inputs, graph, seek };
}

/** A run's inputs and its single-threaded filtergraph, whose `[v]` is the video encoded. */
function graphRun(inputs: readonly string[][], graph: string): string[] {
  return [
    ...COMMON,
    ...inputs.flat(),
    "-filter_complex_threads",
    "1",
    "-filter_complex",
    graph,
    "-map",
    "[v]",
  ];
}

/** The options after a piece's video map: no audio, subtitles, data or metadata. */
const VIDEO_ONLY = ["-an", "-sn", "-dn", "-map_metadata", "-1"];

/** The FFmpeg arguments of one re-encoded piece, and how far its inputs seek (watchdog budget). */
export function pieceArgs(
  piece: Piece,
  plan: RenderPlan,
  files: Pick<RenderFiles, "inputs">,
  output: string,
  encoding: PieceEncoding = {
    encoderArgs: videoEncoderArgs(plan.video, plan.format),
    muxer: MUXERS[plan.format],
  },
): { args: string[]; seek: number } {
  const { inputs, graph, seek } = pieceGraph(piece, plan, files, graphLabels(0, "", "[v]"));
  const args = [
    ...graphRun(inputs, graph),
    "-frames:v",
    String(piece.frames),
    ...encoding.encoderArgs,
    ...VIDEO_ONLY,
    "-f",
    encoding.muxer,
    output,
  ];
  return { args, seek };
}

/**
 * Several re-encoded pieces in one FFmpeg run (docs/decisions/clip-cache.md, "Batched pieces"): each
 * piece's filtergraph, trimmed to its frame count, then all of them concatenated into one encoder
 * with a keyframe forced at every piece's first frame, and cut back into one mp4 file per piece by
 * the segment muxer at those frames (`outputPattern`: a `%03d` pattern, files numbered from 0).
 * One process start-up, one encoder set-up, and the inputs opened once instead of once per piece.
 */
export function batchArgs(
  pieces: readonly Piece[],
  plan: RenderPlan,
  files: Pick<RenderFiles, "inputs">,
  outputPattern: string,
  encoderArgs: string[],
): { args: string[]; seek: number } {
  const inputs: string[][] = [];
  const graphs: string[] = [];
  const starts: number[] = [];
  let frames = 0;
  let seek = 0;
  pieces.forEach((piece, k) => {
    const part = pieceGraph(piece, plan, files, graphLabels(inputs.length, `_${k}`, `[p${k}]`));
    inputs.push(...part.inputs);
    graphs.push(part.graph, `[p${k}]trim=end_frame=${piece.frames}[c${k}]`);
    seek = Math.max(seek, part.seek);
    starts.push(frames);
    frames += piece.frames;
  });
  const cuts = starts.slice(1);
  graphs.push(`${pieces.map((_, k) => `[c${k}]`).join("")}concat=n=${pieces.length}:v=1:a=0[v]`);
  const args = [
    ...graphRun(inputs, graphs.join(";")),
    "-frames:v",
    String(frames),
    ...encoderArgs,
    "-force_key_frames",
    `expr:${cuts.map((n) => `eq(n,${n})`).join("+") || "0"}`,
    ...VIDEO_ONLY,
    "-f",
    "segment",
    "-segment_format",
    "mp4",
    "-segment_frames",
    cuts.join(",") || String(frames),
    "-reset_timestamps",
    "1",
    outputPattern,
  ];
  return { args, seek };
}

/** Encodes the song once (cut or padded to the timeline, faded, optionally normalised). */
export function audioStep(
  plan: RenderPlan,
  files: Pick<RenderFiles, "audio" | "workDir">,
): { step: RenderStep; file: string } {
  const audioFile = joinPath(files.workDir, audioName(plan.format, plan.audio.codec));
  const audio = plan.audio;
  const step: RenderStep = {
    id: "audio",
    kind: "audio",
    label: `encoding the song ${audio.key}`,
    args: [
      ...COMMON,
      "-threads",
      "1",
      ...pinnedInput(files.audio, audio.demuxer),
      "-filter_threads",
      "1",
      "-map",
      "0:a:0",
      "-vn",
      "-sn",
      "-dn",
      "-af",
      songFilter({
        duration: audio.duration,
        songDuration: audio.songDuration,
        fade: audio.fade,
        normalize: audio.normalize,
        sampleRate: audio.sampleRate,
      }),
      ...audioEncoderArgs(audio),
      "-map_metadata",
      "-1",
      audioFile,
    ],
    frames: 0,
    timeoutMs: watchdogMs(audio.duration * 0.2, 0, audio.normalize ? 2 : 1),
  };
  return { step, file: audioFile };
}

/**
 * Joins the concat list's pieces and the encoded song by stream copy. `unsafePaths`: the list names
 * files outside the work dir (absolute paths, dot directories), which the demuxer's safe mode refuses.
 */
export function finalStep(
  plan: RenderPlan,
  files: Pick<RenderFiles, "output">,
  concatFile: string,
  audioFile: string,
  unsafePaths = false,
): RenderStep {
  const final: RenderStep = {
    id: "final",
    kind: "final",
    label: "joining the rendered pieces and the song",
    args: [
      ...COMMON,
      // The job's own list and intermediate files: local files only.
      "-f",
      "concat",
      // Cache assemblies: packets copied verbatim (no in-band parameter sets added at keyframes), so
      // every copied frame is byte-equal to its verified entry's (src/media/output-check.ts); entries
      // and pieces share one SPS/PPS, which the output check confirms.
      ...(unsafePaths ? ["-safe", "0", "-auto_convert", "0"] : []),
      "-protocol_whitelist",
      "file",
      "-i",
      concatFile,
      "-f",
      DEMUXERS[audioName(plan.format, plan.audio.codec).split(".")[1] as OutputFormat],
      "-protocol_whitelist",
      "file",
      "-i",
      audioFile,
      "-map",
      "0:v:0",
      "-map",
      "1:a:0",
      "-c",
      "copy",
      "-t",
      secs(plan.duration),
      "-map_metadata",
      "-1",
      ...(plan.format === "mp4" || plan.format === "mov"
        ? ["-movflags", "+faststart", ...(plan.video.codec === "libx265" ? ["-tag:v", "hvc1"] : [])]
        : []),
      "-f",
      MUXERS[plan.format],
      files.output,
    ],
    frames: 0,
    timeoutMs: watchdogMs(plan.duration * 0.05, 0, 1),
  };
  return final;
}
