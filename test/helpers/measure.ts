/**
 * Measurements of rendered files with ffmpeg/ffprobe, shared by the media, job, end-to-end and
 * hardening suites: stream facts, frame counts, per-frame colour, luma planes, SSIM and audio volume.
 */
import { execFileSync, spawnSync } from "node:child_process";

export interface ProbedVideo {
  frames: number;
  videoDuration: number;
  audioDuration: number;
  width: number;
  height: number;
}

/** Packet count, durations and size of the first video and audio streams. */
export function probeVideo(file: string): ProbedVideo {
  const out = execFileSync(
    "ffprobe",
    [
      "-v",
      "error",
      "-count_packets",
      "-show_entries",
      "stream=codec_type,nb_read_packets,duration,width,height",
      "-of",
      "json",
      file,
    ],
    { encoding: "utf8" },
  );
  const streams = (JSON.parse(out) as { streams: Array<Record<string, string | number>> }).streams;
  const video = streams.find((s) => s["codec_type"] === "video");
  const audio = streams.find((s) => s["codec_type"] === "audio");
  return {
    frames: Number(video?.["nb_read_packets"] ?? 0),
    videoDuration: Number(video?.["duration"] ?? 0),
    audioDuration: Number(audio?.["duration"] ?? 0),
    width: Number(video?.["width"] ?? 0),
    height: Number(video?.["height"] ?? 0),
  };
}

/** Frames of the first video stream, counted by decoding them. */
export function frameCount(file: string): number {
  const out = execFileSync(
    "ffprobe",
    [
      "-v",
      "error",
      "-count_frames",
      "-select_streams",
      "v:0",
      "-show_entries",
      "stream=nb_read_frames",
      "-of",
      "csv=p=0",
      file,
    ],
    { encoding: "utf8" },
  );
  return Number(out.trim());
}

/** Decodes the first video stream of `file` once into `output` (FFmpeg output options), returning stdout. */
function decodeVideo(file: string, output: string[], maxBuffer: number): Buffer {
  return execFileSync(
    "ffmpeg",
    ["-hide_banner", "-nostdin", "-v", "error", "-i", file, "-map", "0:v:0", ...output],
    { maxBuffer },
  );
}

/** The luma plane of every frame of the first video stream (one decode) of a `width`×`height` video. */
export function lumaFrames(file: string, width: number, height: number): Uint8Array[] {
  const raw = decodeVideo(file, ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"], 256 * 1024 * 1024);
  const size = (width * height * 3) / 2;
  const frames: Uint8Array[] = [];
  for (let offset = 0; offset + size <= raw.length; offset += size) {
    frames.push(raw.subarray(offset, offset + width * height));
  }
  return frames;
}

/**
 * SSIM (All) of every frame of two same-length videos. `byFrameNumber`: timestamps are replaced by frame
 * numbers first, for joins that may shift them by under a millisecond (at 29.97 fps enough for `ssim` to
 * pair a frame with its neighbour).
 */
export function ssims(a: string, b: string, options: { byFrameNumber?: boolean } = {}): number[] {
  const graph = options.byFrameNumber
    ? "[0:v]setpts=N[a];[1:v]setpts=N[b];[a][b]ssim=stats_file=-"
    : "[0:v][1:v]ssim=stats_file=-";
  const out = execFileSync(
    "ffmpeg",
    ["-hide_banner", "-nostdin", "-v", "error", "-i", a, "-i", b, "-lavfi", graph, "-f", "null", "-"],
    { encoding: "utf8", maxBuffer: 16 * 1024 * 1024 },
  );
  return [...out.matchAll(/All:([\d.]+)/g)].map((m) => Number(m[1]));
}

export interface FrameStats {
  y: number;
  u: number;
  v: number;
}

/** signalstats averages of every frame of the first video stream (one decode), optionally cropped. */
export function frameStats(file: string, crop?: string): FrameStats[] {
  const filter = `${crop === undefined ? "" : `crop=${crop},`}signalstats,metadata=print:file=-`;
  const out = decodeVideo(file, ["-vf", filter, "-f", "null", "-"], 64 * 1024 * 1024).toString("utf8");
  const frames: FrameStats[] = [];
  let current: Partial<FrameStats> = {};
  for (const line of out.split("\n")) {
    if (line.startsWith("frame:")) {
      current = {};
      frames.push(current as FrameStats);
    }
    const match = /^lavfi\.signalstats\.(YAVG|UAVG|VAVG)=([\d.]+)/.exec(line);
    if (match !== null) {
      const value = Number(match[2]);
      if (match[1] === "YAVG") current.y = value;
      if (match[1] === "UAVG") current.u = value;
      if (match[1] === "VAVG") current.v = value;
    }
  }
  return frames;
}

/** Distance between two frames' average colours. */
export function colourDistance(a: FrameStats, b: FrameStats): number {
  return Math.hypot(a.y - b.y, a.u - b.u, a.v - b.v);
}

/** Mean volume (dB) of the audio between `start` and `end` seconds; about -91 for silence. */
export function meanVolume(file: string, start: number, end: number): number {
  const result = spawnSync(
    "ffmpeg",
    [
      "-hide_banner",
      "-nostdin",
      "-i",
      file,
      "-map",
      "0:a:0",
      "-af",
      `atrim=start=${start}:end=${end},volumedetect`,
      "-f",
      "null",
      "-",
    ],
    { encoding: "utf8" },
  );
  const match = /mean_volume:\s*(-?[\d.]+|-inf) dB/.exec(result.stderr);
  if (match === null) throw new Error(`volumedetect printed no mean volume: ${result.stderr.slice(-500)}`);
  return match[1] === "-inf" ? Number.NEGATIVE_INFINITY : Number(match[1]);
}
