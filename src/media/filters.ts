/**
 * Pure builders of FFmpeg argument fragments (editly's `getCutFromArgs` habit): input options and
 * filter chains for one source span, encoder options, audio filters. No I/O here.
 */
import type { AudioCodec, OutputFormat, Preset, VideoCodec } from "../blueprint/types.js";
import { type Demuxer, pinnedInput } from "./containers.js";

/** Formats seconds for FFmpeg: at most 6 decimals, never exponent notation. */
export function secs(value: number): string {
  const fixed = value.toFixed(6);
  return fixed.includes(".") ? fixed.replace(/\.?0+$/, "") || "0" : fixed;
}

/** The output frame rate as a rational string FFmpeg parses exactly ("30/1", "30000/1001"). */
export function rateString(fps: number): string {
  if (Number.isInteger(fps)) return `${fps}/1`;
  const ntsc = (fps * 1001) / 1000;
  if (Math.abs(ntsc - Math.round(ntsc)) < 1e-3) return `${Math.round(ntsc) * 1000}/1001`;
  return `${Math.round(fps * 1000)}/1000`;
}

export interface SourceFit {
  /** Size after scaling (aspect kept, square pixels), inside the output frame. */
  width: number;
  height: number;
  /** Offset of the picture in the padded output frame. */
  x: number;
  y: number;
}

/** The nearest even size ≥ 2 (yuv420p needs even dimensions). */
export function evenSize(value: number): number {
  return Math.max(2, 2 * Math.round(value / 2));
}

/** Fits a display size into `width`×`height`, aspect kept, centred (offsets even for yuv420p). */
export function fitInto(
  displayWidth: number,
  displayHeight: number,
  width: number,
  height: number,
): SourceFit {
  const scale = Math.min(width / displayWidth, height / displayHeight);
  const w = Math.min(width, evenSize(displayWidth * scale));
  const h = Math.min(height, evenSize(displayHeight * scale));
  return { width: w, height: h, x: 2 * Math.floor((width - w) / 4), y: 2 * Math.floor((height - h) / 4) };
}

/**
 * One thread per decoder, encoder and filtergraph: pieces run side by side (one per granted CPU), and each
 * extra codec thread holds its own frames. Measured on a 720p body: 180 MB RSS with default
 * threads, 140 MB single-threaded, same CPU seconds (docs/decisions/render-architecture.md).
 */
const DECODER = ["-threads", "1"];
export const ENCODER_THREADS = ["-threads", "1"];

/** Frames decoded and thrown away before a span's first frame, so the first frame is chosen exactly. */
const SEEK_MARGIN_SECONDS = 0.5;

/** Square pixels, fitted (aspect kept) and padded black into `width`×`height`, yuv420p. */
export function normaliseChain(fit: SourceFit, width: number, height: number): string[] {
  return [
    `scale=${fit.width}:${fit.height}`,
    ...(fit.width < width || fit.height < height ? [`pad=${width}:${height}:${fit.x}:${fit.y}:black`] : []),
    "setsar=1",
    "format=yuv420p",
  ];
}

export interface SpanSource {
  file: string;
  /** The demuxer the job chose for the file (containers.ts). */
  demuxer: Demuxer;
  /** Video stream duration (s). */
  duration: number;
  fit: SourceFit;
  /**
   * The file's frame j is shown at exactly j/F from t = 0, F the output rate (a clip-cache entry):
   * a span seeks straight to its first frame.
   */
  onGrid?: boolean;
}

export interface SpanFilter {
  /** Input options followed by `-i file`. */
  inputArgs: string[];
  /** Filter chain for `[n:v:0]`, producing exactly `frames` frames at the output rate (no labels). */
  chain: string;
  /** Seconds of source decoded before the first kept frame (at most: from the previous keyframe). */
  seekSeconds: number;
}

export interface SpanRequest {
  /** Source time of the first frame; negative → the first frame is held for the missing frames. */
  start: number;
  frames: number;
}

/**
 * One source span as exactly `frames` output frames: frame k shows the source at `start + k/F`;
 * before the source's start its first frame is held, after its end its last frame is held.
 *
 * Frame selection stays exact with a fast input seek: `-ss` lands `margin` frames early on the output
 * grid, `fps` (anchored at the seek point) picks the frame current at each output time, then `trim`
 * drops the margin. Seeking exactly to the first frame would lose it whenever the decimal `-ss`
 * rounds past the frame's timestamp. A source on the output grid (`onGrid`, a cache entry) is the
 * exception: its frame times are exact, so `-ss` is that time rounded down and no margin is decoded.
 */
export function spanFilter(
  span: SpanRequest,
  source: SpanSource,
  fps: number,
  width: number,
  height: number,
): SpanFilter {
  const rate = rateString(fps);
  // Leading frames before the source starts show its first frame.
  let lead = span.start < 0 ? Math.ceil(-span.start * fps - 1e-6) : 0;
  if (lead >= span.frames) lead = span.frames - 1;
  const first = Math.max(0, span.start + lead / fps);
  const real = span.frames - lead;
  const normalise = normaliseChain(source.fit, width, height);
  const hold = `tpad=${lead > 0 ? `start=${lead}:start_mode=clone:` : ""}stop=-1:stop_mode=clone`;
  const finish = [hold, `trim=end_frame=${span.frames}`, "setpts=N/FRAME_RATE/TB"];

  if (first > source.duration - 1.5 / fps) {
    // Past the last frame: take the source's last frame and hold it.
    const seek = Math.max(0, source.duration - 1);
    return {
      inputArgs: [
        ...(seek > 0 ? ["-ss", secs(seek)] : []),
        ...DECODER,
        ...pinnedInput(source.file, source.demuxer),
      ],
      chain: [
        "reverse",
        "trim=end_frame=1",
        "setpts=PTS-STARTPTS",
        `fps=${rate}:start_time=0`,
        ...normalise,
        ...finish,
      ].join(","),
      seekSeconds: seek,
    };
  }
  // On the output grid the first frame's time is known exactly: seek to it rounded down to the µs
  // (never past it). The demuxer starts at the keyframe before it and FFmpeg's accurate seek drops
  // the frames in between, so no margin is decoded and thrown away.
  const margin =
    source.onGrid === true
      ? 0
      : Math.min(Math.ceil(SEEK_MARGIN_SECONDS * fps), Math.floor(first * fps + 1e-6));
  const seek = source.onGrid === true ? Math.floor(first * 1e6) / 1e6 : Math.max(0, first - margin / fps);
  const readSeconds = (margin + real) / fps + 1;
  return {
    inputArgs: [
      ...(seek > 1e-6 ? ["-ss", secs(seek)] : []),
      "-t",
      secs(readSeconds),
      ...DECODER,
      ...pinnedInput(source.file, source.demuxer),
    ],
    chain: [
      `fps=${rate}:start_time=0`,
      ...(margin > 0 ? [`trim=start_frame=${margin}`, "setpts=PTS-STARTPTS"] : []),
      ...normalise,
      ...finish,
    ].join(","),
    seekSeconds: seek,
  };
}

export interface VideoEncoding {
  codec: VideoCodec;
  preset: Preset;
  /** CRF mode unless `bitrate` is set. */
  crf: number;
  bitrate?: string;
}

/** libvpx-vp9 has no x264 presets: map them onto its deadline/cpu-used speed levels. */
function vp9Speed(preset: Preset): string[] {
  switch (preset) {
    case "ultrafast":
    case "superfast":
      return ["-deadline", "realtime", "-cpu-used", "8"];
    case "veryfast":
    case "faster":
      return ["-deadline", "good", "-cpu-used", "5"];
    case "fast":
    case "medium":
      return ["-deadline", "good", "-cpu-used", "3"];
    case "slow":
    case "slower":
    case "veryslow":
      return ["-deadline", "good", "-cpu-used", "1"];
  }
}

/**
 * Encoder options. Every piece uses exactly these, so the pieces share codec parameters (profile,
 * level, size, SAR, pix_fmt, timebase) and join with the concat demuxer without re-encoding.
 */
export function videoEncoderArgs(encoding: VideoEncoding, format: OutputFormat): string[] {
  const rate = encoding.bitrate === undefined ? ["-crf", String(encoding.crf)] : ["-b:v", encoding.bitrate];
  switch (encoding.codec) {
    case "libx264":
      return [
        "-c:v",
        "libx264",
        "-preset",
        encoding.preset,
        "-profile:v",
        "high",
        ...rate,
        "-pix_fmt",
        "yuv420p",
        ...ENCODER_THREADS,
      ];
    case "libx265":
      return [
        "-c:v",
        "libx265",
        "-preset",
        encoding.preset,
        "-profile:v",
        "main",
        ...rate,
        "-pix_fmt",
        "yuv420p",
        "-x265-params",
        "log-level=error:pools=1:frame-threads=1",
        ...(format === "mp4" || format === "mov" ? ["-tag:v", "hvc1"] : []),
      ];
    case "libvpx-vp9":
      return [
        "-c:v",
        "libvpx-vp9",
        ...vp9Speed(encoding.preset),
        ...ENCODER_THREADS,
        ...(encoding.bitrate === undefined ? ["-crf", String(encoding.crf), "-b:v", "0"] : rate),
        "-pix_fmt",
        "yuv420p",
      ];
  }
}

export interface AudioEncoding {
  codec: AudioCodec;
  bitrate: string;
  sampleRate: number;
  channels: number;
}

export function audioEncoderArgs(audio: AudioEncoding): string[] {
  return [
    "-c:a",
    audio.codec,
    "-b:a",
    audio.bitrate,
    "-ar",
    String(audio.sampleRate),
    "-ac",
    String(audio.channels),
  ];
}

export interface SongFilter {
  /** Timeline length (s): the song is cut to it, or padded with silence up to it. */
  duration: number;
  /** The song's own length (s). */
  songDuration: number;
  fade: number;
  normalize: boolean;
  sampleRate: number;
}

/**
 * The soundtrack: the song from 0, cut to the timeline (or padded with silence: never `-shortest`),
 * optionally loudness-normalised, faded in and out at its ends.
 */
export function songFilter(song: SongFilter): string {
  const end = Math.min(song.duration, song.songDuration);
  const fade = Math.min(song.fade, end / 2);
  return [
    `atrim=end=${secs(song.duration)}`,
    "asetpts=PTS-STARTPTS",
    ...(song.normalize ? ["loudnorm=I=-16:TP=-1.5:LRA=11"] : []),
    `aresample=${song.sampleRate}`,
    `aformat=channel_layouts=stereo`,
    ...(fade > 0
      ? [`afade=t=in:st=0:d=${secs(fade)}`, `afade=t=out:st=${secs(end - fade)}:d=${secs(fade)}`]
      : []),
    `apad=whole_dur=${secs(song.duration)}`,
    `atrim=end=${secs(song.duration)}`,
  ].join(",");
}

/*
 * Transition effects (docs/BLUEPRINT_SCHEMA.md, "Transitions"). Each is a per-frame filter whose
 * parameters are expressions of the frame's index in its window, so every frame is determined by
 * its position alone, on both render paths and at any size or rate. Progress through a window of
 * `D` frames is (k+1)/(D+1) for frame k, as for the crossfade: neither end repeats a pure frame of
 * either move.
 */

/**
 * The index of the current frame in its chain, from its timestamp: every span chain ends with
 * `setpts=N/FRAME_RATE/TB`, so frame k has t = k/F. Timestamps are used rather than the filters'
 * own frame counters, whose origin differs between filters.
 */
export function frameIndexExpr(fps: number): string {
  const [num, den] = rateString(fps).split("/");
  return `floor(t*${num}/${den}+0.5)`;
}

/** `zoom_in` / `zoom_out` magnify up to this factor (the centre half of the picture fills the frame). */
export const ZOOM_FACTOR = 2;

/**
 * Magnifies the picture about its centre by `scale` (an expression ≥ 1), keeping its size and
 * aspect ratio (sub-pixel source corners, bilinear). In `scale`, `in` is the frame's 1-based
 * index in this filter's input: perspective, the one filter that zooms by sub-pixel amounts per
 * frame without changing the frame size, offers no timestamp.
 */
export function zoomFilter(scale: string, enable?: string): string {
  const s = `(${scale})`;
  const near = (side: "W" | "H") => `${side}/2*(1-1/${s})`;
  const far = (side: "W" | "H") => `${side}/2*(1+1/${s})`;
  const corners = [
    `x0='${near("W")}'`,
    `y0='${near("H")}'`,
    `x1='${far("W")}'`,
    `y1='${near("H")}'`,
    `x2='${near("W")}'`,
    `y2='${far("H")}'`,
    `x3='${far("W")}'`,
    `y3='${far("H")}'`,
  ];
  return `perspective=${corners.join(":")}:eval=frame${enable === undefined ? "" : `:enable='${enable}'`}`;
}

/**
 * Turns the picture clockwise by `angle` radians (an expression; `in` as in `zoomFilter`) about its
 * centre, scaled down just enough that the whole turned picture stays inside the frame: never
 * stretched, never cut off, black around it. The picture gets a thin black border first so the
 * area outside it samples black (perspective clamps to the source's edge), then the border is
 * cropped away. At angle 0 the picture is untouched, pixel for pixel.
 */
export function turnFilter(angle: string, width: number, height: number, enable?: string): string {
  const border = 2;
  const cos = `cos(${angle})`;
  const sin = `sin(${angle})`;
  const fit = `min(${width}/(${width}*abs(${cos})+${height}*abs(${sin})),${height}/(${width}*abs(${sin})+${height}*abs(${cos})))`;
  const [cx, cy] = [width / 2 + border, height / 2 + border];
  // Where each corner of the bordered picture goes (top left, top right, bottom left, bottom right).
  const corners = [
    [-cx, -cy],
    [cx, -cy],
    [-cx, cy],
    [cx, cy],
  ].map(([dx, dy], i) => {
    const x = `${cx}+${fit}*((${dx})*${cos}-(${dy})*${sin})`;
    const y = `${cy}+${fit}*((${dx})*${sin}+(${dy})*${cos})`;
    return `x${i}='${x}':y${i}='${y}'`;
  });
  return [
    `pad=${width + 2 * border}:${height + 2 * border}:${border}:${border}:black`,
    `perspective=${corners.join(":")}:sense=destination:eval=frame${enable === undefined ? "" : `:enable='${enable}'`}`,
    `crop=${width}:${height}:${border}:${border}`,
  ].join(",");
}

export type WipeType = "wipe_left" | "wipe_right";

/** Width (even, in pixels) the incoming picture covers at `progress` (an expression in [0, 1]). */
function wipeCover(width: number, progress: string): string {
  return `2*floor(${width / 2}*(${progress})+0.5)`;
}

/**
 * A wipe over a window of `frames` frames: frame k shows the incoming picture, in place, on a share
 * (k+1)/(frames+1) of the width — the right part for `wipe_left` (the edge travels right to left),
 * the left part for `wipe_right` — and the outgoing picture elsewhere. The incoming picture is padded
 * to twice the width and cropped per frame so that, overlaid at the edge, each column lands where
 * it belongs: hard edge, exact pixels, no blending.
 *
 * `incoming` is appended to the incoming chain; `overlay` takes [outgoing][incoming].
 */
export function wipeFilters(
  type: WipeType,
  frames: number,
  fps: number,
  width: number,
  height: number,
): { incoming: string; overlay: string } {
  const cover = wipeCover(width, `(${frameIndexExpr(fps)}+1)/${frames + 1}`);
  const edge = type === "wipe_left" ? `${width}-${cover}` : cover;
  const padX = type === "wipe_left" ? 0 : width;
  const overlayX = type === "wipe_left" ? edge : `${edge}-${width}`;
  return {
    incoming: `pad=${2 * width}:${height}:${padX}:0:black,crop=w=${width}:h=${height}:x='${edge}':y=0`,
    overlay: `overlay=x='${overlayX}':y=0:eof_action=endall`,
  };
}

/**
 * A first move's wipe from black over its first `frames` frames: a black picture covers the part
 * not yet revealed and moves off as the edge travels (the move itself stays in place). `source` is
 * a filtergraph source; `overlay` takes [move][black] and passes the move through after the window.
 */
export function wipeOpeningFilters(
  type: WipeType,
  frames: number,
  fps: number,
  width: number,
  height: number,
): { source: string; overlay: string } {
  const cover = wipeCover(width, `min((${frameIndexExpr(fps)}+1)/${frames + 1},1)`);
  const x = type === "wipe_left" ? `-${cover}` : cover;
  return {
    source: `color=c=black:s=${width}x${height}:r=${rateString(fps)},trim=end_frame=${frames}`,
    overlay: `overlay=x='${x}':y=0:eof_action=pass`,
  };
}
