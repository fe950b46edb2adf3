/**
 * Checks a rendered file against its plan (SPEC §3.5): both streams present, exact frame count,
 * size, duration, audio/video within one frame, and (optionally) a clean full decode.
 */
import { stat } from "node:fs/promises";
import { JobError } from "../errors.js";
import type { Logger } from "../log.js";
import { DEMUXERS } from "./commands.js";
import { pinnedInput } from "./containers.js";
import { redactPaths, runFfmpeg, runFfprobeJson } from "./ffmpeg.js";
import { parseRate } from "./media-info.js";
import type { RenderPlan } from "./plan.js";

export interface VerifiedOutput {
  file_size: number;
  duration: number;
  width: number;
  height: number;
  fps: number;
  video_codec: string;
  audio_codec: string;
}

interface ProbedStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  nb_read_packets?: string;
  duration?: string;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  tags?: Record<string, string>;
}

/** Stream duration: the field (mp4/mov), else Matroska's DURATION tag ("00:00:02.400000000"). */
function streamDuration(stream: ProbedStream): number | undefined {
  const direct = Number(stream.duration);
  if (stream.duration !== undefined && Number.isFinite(direct)) return direct;
  const tag = stream.tags?.["DURATION"] ?? stream.tags?.["duration"];
  const match = tag === undefined ? null : /^(\d+):(\d+):(\d+(?:\.\d+)?)$/.exec(tag);
  if (match === null) return undefined;
  return Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3]);
}

function fail(problems: string[], details?: unknown): JobError {
  return new JobError(`The rendered video failed verification: ${problems.join("; ")}`, {
    code: "VERIFY_FAILED",
    details,
  });
}

export async function verifyOutput(
  file: string,
  plan: RenderPlan,
  options: {
    ffprobePath?: string;
    ffmpegPath?: string;
    signal?: AbortSignal;
    decodeCheck?: boolean;
    /** Decoder and filter threads of the decode check (default 1; the job passes its granted CPUs). */
    threads?: number;
    logger?: Logger;
  } = {},
): Promise<VerifiedOutput> {
  const size = await stat(file).then(
    (s) => s.size,
    () => 0,
  );
  if (size === 0) throw fail(["the output file is missing or empty"]);
  const probe = await runFfprobeJson(
    [
      "-count_packets",
      "-show_entries",
      "stream=codec_type,codec_name,width,height,nb_read_packets,duration,avg_frame_rate,r_frame_rate:stream_tags=DURATION:format=duration",
      ...pinnedInput(file, DEMUXERS[plan.format]),
    ],
    { ffprobePath: options.ffprobePath, signal: options.signal, timeoutMs: 120_000 },
  );
  if (!probe.ok) throw fail([`it cannot be read (${probe.reason})`]);
  const json = probe.json as { streams?: ProbedStream[]; format?: { duration?: string } };
  const streams = json.streams ?? [];
  const video = streams.find((s) => s.codec_type === "video");
  const audio = streams.find((s) => s.codec_type === "audio");
  const problems: string[] = [];
  if (video === undefined) problems.push("it has no video stream");
  if (audio === undefined) problems.push("it has no audio stream");
  if (video === undefined || audio === undefined) throw fail(problems, { streams });

  const frame = 1 / plan.fps;
  const frames = Number(video.nb_read_packets);
  if (frames !== plan.totalFrames)
    problems.push(`it has ${frames} video frames, expected ${plan.totalFrames}`);
  if (video.width !== plan.width || video.height !== plan.height) {
    problems.push(`it is ${video.width}x${video.height}, expected ${plan.width}x${plan.height}`);
  }
  const formatDuration = Number(json.format?.duration);
  const videoDuration = streamDuration(video) ?? formatDuration;
  const audioDuration = streamDuration(audio) ?? formatDuration;
  if (!(Math.abs(videoDuration - plan.duration) < frame)) {
    problems.push(`its video lasts ${videoDuration.toFixed(3)} s, expected ${plan.duration.toFixed(3)} s`);
  }
  if (!(Math.abs(audioDuration - videoDuration) < frame)) {
    problems.push(
      `its audio (${audioDuration.toFixed(3)} s) and video (${videoDuration.toFixed(3)} s) differ by a frame or more`,
    );
  }
  if (problems.length > 0) throw fail(problems, { streams, format: json.format });

  if (options.decodeCheck ?? true) {
    // Without -threads FFmpeg sizes itself from the CPUs it sees, not the quota it is granted.
    const threads = String(Math.max(1, Math.floor(options.threads ?? 1)));
    const { stderr } = await runFfmpeg(
      [
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-filter_threads",
        threads,
        "-threads",
        threads,
        ...pinnedInput(file, DEMUXERS[plan.format]),
        "-f",
        "null",
        "-",
      ],
      {
        ffmpegPath: options.ffmpegPath,
        signal: options.signal,
        logger: options.logger,
        timeoutMs: Math.ceil(
          30_000 + 2_000 * plan.duration * Math.max(1, (plan.width * plan.height) / (1280 * 720)),
        ),
        label: "decoding the rendered video to check it",
      },
    ).catch((err: unknown) => {
      if (err instanceof JobError && err.code === "FFMPEG_FAILED") {
        throw fail([`it does not decode cleanly (${err.message})`], err.details);
      }
      throw err;
    });
    if (stderr.trim() !== "") {
      const first = redactPaths(stderr.trim().split("\n")[0] ?? "");
      throw fail([`decoding it reports errors (${first})`], { stderr: redactPaths(stderr.slice(-4000)) });
    }
  }

  const fps = parseRate(video.avg_frame_rate) || parseRate(video.r_frame_rate) || plan.fps;
  return {
    file_size: size,
    duration: Math.round(videoDuration * 1000) / 1000,
    width: video.width ?? plan.width,
    height: video.height ?? plan.height,
    fps: Math.abs(fps - plan.fps) < 0.01 ? plan.fps : Math.round(fps * 1000) / 1000,
    video_codec: video.codec_name ?? "unknown",
    audio_codec: audio.codec_name ?? "unknown",
  };
}
