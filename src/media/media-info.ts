/**
 * What the render needs to know about an input (pure): ffprobe's JSON normalised at the boundary
 * (editly's `readVideoFileInfo` habit). `probe.ts` runs ffprobe and hands its output to `parseProbe`.
 */
import { JobError } from "../errors.js";
import { type Demuxer, MAX_PIXELS, MAX_SIDE } from "./containers.js";

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
