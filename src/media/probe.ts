/**
 * What the render needs to know about an input, read with ffprobe and normalised at the boundary
 * (editly's `readVideoFileInfo` habit): `parseProbe` is pure, `probeMedia` runs ffprobe.
 */
import { open, stat } from "node:fs/promises";
import pLimit from "p-limit";
import { JobError } from "../errors.js";
import {
  type Demuxer,
  MAX_PIXELS,
  MAX_SIDE,
  pinnedInput,
  SNIFF_BYTES,
  sniffContainer,
} from "./containers.js";
import { runFfprobeJson } from "./ffmpeg.js";

export interface MediaInfo {
  /** The demuxer the job chose from the file's first bytes; every later run opens the file with it. */
  demuxer: Demuxer;
  /** Seconds: the video stream's duration when there is one, else the container's / audio's. */
  duration: number;
  hasVideo: boolean;
  hasAudio: boolean;
  /** Coded size of the first video stream (0 without video). */
  width: number;
  height: number;
  /** Sample aspect ratio (pixel width / height); 1 when unknown. */
  sar: number;
  /** Rotation metadata in degrees, normalised to 0, 90, 180 or 270 (clockwise display rotation). */
  rotation: 0 | 90 | 180 | 270;
  /** Size as displayed: square pixels (`width·sar`) and rotation applied. */
  displayWidth: number;
  displayHeight: number;
  /** Frames per second (`avg_frame_rate`, else `r_frame_rate`); 0 without video. */
  fps: number;
  /** `r_frame_rate` and `avg_frame_rate` disagree: phone footage with variable frame rate. */
  variableFrameRate: boolean;
  videoCodec?: string;
  audioCodec?: string;
  audioSampleRate?: number;
  audioChannels?: number;
}

export type MediaKind = "clip" | "song";

interface RawStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  sample_aspect_ratio?: string;
  r_frame_rate?: string;
  avg_frame_rate?: string;
  duration?: string;
  sample_rate?: string;
  channels?: number;
  tags?: Record<string, string>;
  side_data_list?: Array<{ side_data_type?: string; rotation?: number | string }>;
  disposition?: { attached_pic?: number };
}

interface RawProbe {
  streams?: RawStream[];
  format?: { duration?: string; format_name?: string };
}

/** "30000/1001" → 29.97; "0/0" and junk → 0. */
export function parseRate(raw: string | undefined): number {
  if (raw === undefined) return 0;
  const [num, den] = raw.split("/").map(Number);
  if (num === undefined || !Number.isFinite(num)) return 0;
  if (den === undefined) return Math.max(num, 0);
  return den > 0 && num > 0 ? num / den : 0;
}

function parseSar(raw: string | undefined): number {
  if (raw === undefined) return 1;
  const [num, den] = raw.split(":").map(Number);
  if (num === undefined || den === undefined || !(num > 0) || !(den > 0)) return 1;
  return num / den;
}

function parseRotation(stream: RawStream): 0 | 90 | 180 | 270 {
  const side = stream.side_data_list?.find((d) => d.rotation !== undefined);
  const raw = side?.rotation ?? stream.tags?.["rotate"];
  const degrees = Number(raw ?? 0);
  if (!Number.isFinite(degrees)) return 0;
  // The display matrix's rotation is counter-clockwise (-90 = rotate 90° clockwise); the tag is clockwise.
  const clockwise = side !== undefined ? -degrees : degrees;
  const normalised = (((Math.round(clockwise / 90) * 90) % 360) + 360) % 360;
  return normalised as 0 | 90 | 180 | 270;
}

function positive(raw: string | number | undefined): number | undefined {
  const value = Number(raw);
  return raw !== undefined && Number.isFinite(value) && value > 0 ? value : undefined;
}

const IMAGE_CODECS = new Set([
  "png",
  "mjpeg",
  "jpegls",
  "bmp",
  "gif",
  "webp",
  "tiff",
  "apng",
  "qoi",
  "jpeg2000",
]);

/** A picture without a timeline (`image2`/`*_pipe` demuxers, or an image codec). */
function isStillImage(video: RawStream, formatName: string | undefined): boolean {
  const format = formatName ?? "";
  return (
    format === "image2" ||
    format.endsWith("_pipe") ||
    (video.codec_name !== undefined && IMAGE_CODECS.has(video.codec_name))
  );
}

/**
 * Normalises ffprobe's JSON (`-show_format -show_streams`). Throws MEDIA_INVALID naming `key` when
 * the file has neither a video nor an audio stream, or no duration.
 */
export function parseProbe(json: unknown, key: string, demuxer: Demuxer = "mov"): MediaInfo {
  const probe = (json ?? {}) as RawProbe;
  const streams = Array.isArray(probe.streams) ? probe.streams : [];
  const video = streams.find((s) => s.codec_type === "video" && s.disposition?.attached_pic !== 1);
  const audio = streams.find((s) => s.codec_type === "audio");
  if (video === undefined && audio === undefined) {
    throw new JobError(`${key} is not a readable video or audio file: it has no video or audio stream`, {
      code: "MEDIA_INVALID",
    });
  }
  const duration =
    positive(video?.duration) ?? positive(probe.format?.duration) ?? positive(audio?.duration) ?? 0;
  if (!(duration > 0)) {
    if (video !== undefined && audio === undefined && isStillImage(video, probe.format?.format_name)) {
      throw new JobError(
        `${key} is not a readable video or audio file: it is a still image (${video.codec_name}), not a video`,
        { code: "MEDIA_INVALID" },
      );
    }
    throw new JobError(`${key} is not a readable video or audio file: its duration is unknown`, {
      code: "MEDIA_INVALID",
    });
  }
  const width = video?.width ?? 0;
  const height = video?.height ?? 0;
  const sar = parseSar(video?.sample_aspect_ratio);
  const rotation = video === undefined ? 0 : parseRotation(video);
  const squareWidth = Math.round(width * sar);
  const turned = rotation === 90 || rotation === 270;
  const rFps = parseRate(video?.r_frame_rate);
  const avgFps = parseRate(video?.avg_frame_rate);
  const fps = avgFps > 0 ? avgFps : rFps;
  if (width > MAX_SIDE || height > MAX_SIDE || width * height > MAX_PIXELS) {
    throw new JobError(
      `${key} is not a readable video or audio file: its picture is ${width}×${height}, larger than the job decodes (at most ${MAX_SIDE} pixels a side and ${MAX_PIXELS / 1e6} megapixels)`,
      { code: "MEDIA_INVALID" },
    );
  }
  const info: MediaInfo = {
    demuxer,
    duration,
    hasVideo: video !== undefined && width > 0 && height > 0,
    hasAudio: audio !== undefined,
    width,
    height,
    sar,
    rotation,
    displayWidth: turned ? height : squareWidth,
    displayHeight: turned ? squareWidth : height,
    fps,
    variableFrameRate: rFps > 0 && avgFps > 0 && Math.abs(rFps - avgFps) / rFps > 0.01,
  };
  if (video?.codec_name !== undefined) info.videoCodec = video.codec_name;
  if (audio?.codec_name !== undefined) info.audioCodec = audio.codec_name;
  const sampleRate = positive(audio?.sample_rate);
  if (sampleRate !== undefined) info.audioSampleRate = sampleRate;
  if (audio?.channels !== undefined) info.audioChannels = audio.channels;
  return info;
}

function describe(kind: MediaKind | undefined, key: string): string {
  if (kind === "clip") return `Clip ${key} is not a readable video`;
  if (kind === "song") return `Song ${key} is not a readable audio file`;
  return `${key} is not a readable video or audio file`;
}

/** Reads a file's first bytes and picks its demuxer from the allowlist (containers.ts). */
export async function sniffFile(file: string): Promise<ReturnType<typeof sniffContainer>> {
  const handle = await open(file, "r");
  try {
    const buffer = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, SNIFF_BYTES, 0);
    return sniffContainer(buffer.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

/**
 * ffprobe processes at once, across every caller: each is cheap in CPU but ~20 MB of memory, and 29 at once
 * cost ~500 MB of the 512 MiB budget.
 */
const probeSlots = pLimit(4);

/**
 * Probes a local file fetched from storage key `key`. Unreadable, empty or stream-less files (and,
 * with `kind`, a clip without video or a song without audio) fail with MEDIA_INVALID naming the key,
 * as do files that are not in an allowed plain container (playlists, manifests, concat scripts,
 * images: containers.ts) and pictures larger than the job decodes. ffprobe opens the file with the
 * sniffed demuxer and local files only, so the probe itself follows no references.
 */
export async function probeMedia(
  file: string,
  key: string,
  options: { ffprobePath?: string; signal?: AbortSignal; kind?: MediaKind } = {},
): Promise<MediaInfo> {
  const size = await stat(file).then(
    (s) => s.size,
    () => -1,
  );
  if (size <= 0) {
    throw new JobError(
      `${describe(options.kind, key)}: ${size === 0 ? "the file is empty" : "the file is missing"}`,
      {
        code: "MEDIA_INVALID",
      },
    );
  }
  const sniffed = await sniffFile(file);
  if ("refused" in sniffed) {
    throw new JobError(`${describe(options.kind, key)}: ${sniffed.refused}`, {
      code: "MEDIA_INVALID",
    });
  }
  const result = await probeSlots(() =>
    runFfprobeJson(["-show_format", "-show_streams", ...pinnedInput(file, sniffed.demuxer)], options),
  );
  if (!result.ok) {
    throw new JobError(`${describe(options.kind, key)}: ${result.reason}`, { code: "MEDIA_INVALID" });
  }
  if (/exceeds specified max pixel count/.test(result.stderr)) {
    throw new JobError(
      `${describe(options.kind, key)}: its picture is larger than the job decodes (at most ${MAX_SIDE} pixels a side and ${MAX_PIXELS / 1e6} megapixels)`,
      { code: "MEDIA_INVALID" },
    );
  }
  let info: MediaInfo;
  try {
    info = parseProbe(result.json, key, sniffed.demuxer);
  } catch (err) {
    if (err instanceof JobError && options.kind !== undefined) {
      throw new JobError(
        `${describe(options.kind, key)}: ${err.message.slice(err.message.indexOf(": ") + 2)}`,
        {
          code: "MEDIA_INVALID",
        },
      );
    }
    throw err;
  }
  if (options.kind === "clip" && !info.hasVideo) {
    throw new JobError(`${describe("clip", key)}: it has no video stream`, { code: "MEDIA_INVALID" });
  }
  if (options.kind === "song" && !info.hasAudio) {
    throw new JobError(`Song ${key} has no audio stream`, { code: "MEDIA_INVALID" });
  }
  return info;
}
