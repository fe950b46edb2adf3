/**
 * Checks a rendered file against its plan (SPEC §3.5): both streams present, exact frame count,
 * size, duration, audio/video within one frame, and that it decodes without errors. Given the
 * pieces the renderer made (`src/media/output-check.ts`), every packet is checked too (timestamps,
 * a keyframe at every piece start, copied frames byte-equal to their verified cache entries) and
 * only what the run encoded, plus every join, is decoded (`decode: "partial"`); `decode: "full"`
 * decodes the whole file.
 */
import { createHash, type Hash, randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { JobError } from "../errors.js";
import type { Logger } from "../log.js";
import { DEMUXERS } from "./commands.js";
import { pinnedInput } from "./containers.js";
import { redactPaths, runFfmpeg, runFfprobeJson } from "./ffmpeg.js";
import { parseRate } from "./media-info.js";
import {
  checkCopiedAudio,
  checkPackets,
  decodeRanges,
  type FrameRange,
  fromKeyframes,
  type OutputPiece,
  type ProbedPacket,
  rangeFrames,
} from "./output-check.js";
import type { RenderPlan } from "./plan.js";

/** How much of the output the check decodes (VERIFY_DECODE). */
export type DecodeMode = "full" | "partial" | "off";

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
  index?: number;
  extradata_hash?: string;
  codec_type?: string;
  time_base?: string;
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

export interface VerifyOptions {
  ffprobePath?: string;
  ffmpegPath?: string;
  signal?: AbortSignal;
  /** Deprecated spelling of `decode`: false = "off". */
  decodeCheck?: boolean;
  /**
   * "partial" (default): decode what the run encoded and every join (needs `pieces`; without them
   * the whole file is decoded); "full": the whole file; "off": packets only.
   */
  decode?: DecodeMode;
  /** The runs of frames the renderer made, in order; enables the packet-level checks. */
  pieces?: readonly OutputPiece[];
  /** Decoder and filter threads of the decode check (default 1; the job passes its granted CPUs). */
  threads?: number;
  logger?: Logger;
  /** Filled with what the check did (for logs and benchmarks). */
  report?: VerifyReport;
  /**
   * The output's audio is the packets of an encode that was decoded when it was stored (the song
   * cache): its packet hashes. Matching packets are not decoded again (`decode: "partial"`).
   */
  audioCopy?: readonly string[];
}

export interface VerifyReport {
  decodedFrames: number;
  /** Whether the audio stream was decoded (not when it is a verified copy of the cached song). */
  audioDecoded?: boolean;
  decodeRanges: number;
  packetsChecked: number;
  copiedFramesMatched: number;
}

/** Rational time base "1/15360" → seconds per tick. */
function tick(timeBase: string | undefined): { num: number; den: number } {
  const [num, den] = (timeBase ?? "").split("/").map(Number);
  return num !== undefined && den !== undefined && num > 0 && den > 0 ? { num, den } : { num: 1, den: 1 };
}

/**
 * `SHA256:<hex>` of each packet's payload (`pos`, `size` in the file), in the order given, read in one
 * pass in file order; undefined for a packet whose bytes are not all there (unknown or past the end).
 */
async function hashPayloads(
  file: string,
  packets: ReadonlyArray<{ pos: number; size: number }>,
  signal?: AbortSignal,
): Promise<Array<string | undefined>> {
  const hashes: Array<string | undefined> = new Array(packets.length).fill(undefined);
  const order = packets
    .map((_, i) => i)
    .filter((i) => Number.isInteger(packets[i]!.pos) && packets[i]!.pos >= 0 && packets[i]!.size >= 0)
    .sort((a, b) => packets[a]!.pos - packets[b]!.pos);
  let next = 0;
  let current: { index: number; hash: Hash; left: number } | undefined;
  let offset = 0;
  const stream = createReadStream(file, {
    highWaterMark: 1 << 20,
    ...(signal === undefined ? {} : { signal }),
  });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let at = 0;
    while (at < chunk.length) {
      if (current === undefined) {
        // Skip packets that overlap one already read (not in a well-formed file): left unhashed.
        while (next < order.length && packets[order[next]!]!.pos < offset + at) next += 1;
        if (next >= order.length) break;
        const packet = packets[order[next]!]!;
        if (packet.pos >= offset + chunk.length) break;
        at = packet.pos - offset;
        current = { index: order[next]!, hash: createHash("sha256"), left: packet.size };
        next += 1;
      }
      const take = Math.min(current.left, chunk.length - at);
      current.hash.update(chunk.subarray(at, at + take));
      at += take;
      current.left -= take;
      if (current.left === 0) {
        hashes[current.index] = `SHA256:${current.hash.digest("hex")}`;
        current = undefined;
      }
    }
    offset += chunk.length;
  }
  return hashes;
}

/** `SHA256:<hex>` of the video stream's decoder configuration (SPS/PPS), as ffprobe reports it. */
async function decoderConfigHash(
  file: string,
  plan: RenderPlan,
  options: Pick<VerifyOptions, "ffprobePath" | "signal">,
): Promise<string | undefined> {
  const probe = await runFfprobeJson(
    [
      "-show_data_hash",
      "SHA256",
      "-select_streams",
      "v:0",
      "-show_entries",
      "stream=extradata_hash",
      ...pinnedInput(file, DEMUXERS[plan.format]),
    ],
    { ffprobePath: options.ffprobePath, signal: options.signal },
  );
  const streams = probe.ok ? ((probe.json as { streams?: ProbedStream[] }).streams ?? []) : [];
  return streams[0]?.extradata_hash;
}

export async function verifyOutput(
  file: string,
  plan: RenderPlan,
  options: VerifyOptions = {},
): Promise<VerifiedOutput> {
  const size = await stat(file).then(
    (s) => s.size,
    () => 0,
  );
  if (size === 0) throw fail(["the output file is missing or empty"]);
  const pieces = options.pieces;
  const audioCopy = options.audioCopy;
  const hashes = pieces?.some((piece) => piece.copy !== undefined) === true || audioCopy !== undefined;
  // Payload hashes are computed here from each packet's position and size (one sequential read, the
  // platform's SHA-256: ≈ 0.1 s for 107 MB) rather than by ffprobe (≈ 0.6 s); the same `SHA256:<hex>`
  // as ffprobe's `-show_data_hash SHA256`, which recorded the entries' packets.
  const probe = await runFfprobeJson(
    [
      "-show_entries",
      `stream=index,codec_type,codec_name,width,height,duration,avg_frame_rate,r_frame_rate,time_base:stream_tags=DURATION:format=duration:packet=stream_index,pts,dts,flags${hashes ? ",pos,size" : ""}`,
      // One line per packet (the default pretty JSON is twice the size).
      "-print_format",
      "json=compact=1",
      ...pinnedInput(file, DEMUXERS[plan.format]),
    ],
    {
      ffprobePath: options.ffprobePath,
      signal: options.signal,
      timeoutMs: 120_000 + 20 * plan.totalFrames,
      // Every video packet and ≤ 50 audio packets a second, ≈ 150 bytes each with a hash (×2 margin).
      maxBuffer: 16 * 1024 * 1024 + Math.ceil(plan.totalFrames + 50 * plan.duration) * 300,
    },
  );
  if (!probe.ok) throw fail([`it cannot be read (${probe.reason})`]);
  const json = probe.json as {
    streams?: ProbedStream[];
    format?: { duration?: string };
    packets?: Array<{
      stream_index?: number;
      pts?: number;
      dts?: number;
      flags?: string;
      pos?: string;
      size?: string;
    }>;
  };
  const streams = json.streams ?? [];
  const video = streams.find((s) => s.codec_type === "video");
  const audio = streams.find((s) => s.codec_type === "audio");
  const problems: string[] = [];
  if (video === undefined) problems.push("it has no video stream");
  if (audio === undefined) problems.push("it has no audio stream");
  if (video === undefined || audio === undefined) throw fail(problems, { streams });

  const videoTb = tick(video.time_base);
  const audioTb = tick(audio.time_base);
  const listed = (json.packets ?? []).filter(
    (p) => p.stream_index === video.index || p.stream_index === audio.index,
  );
  const payloadHashes = hashes
    ? await hashPayloads(
        file,
        listed.map((p) => ({ pos: Number(p.pos), size: Number(p.size) })),
        options.signal,
      )
    : [];
  const extradataHash = hashes ? await decoderConfigHash(file, plan, options) : undefined;
  const packets: ProbedPacket[] = [];
  const videoTicks: number[] = [];
  for (const [i, p] of listed.entries()) {
    const isVideo = p.stream_index === video.index;
    const tb = isVideo ? videoTb : audioTb;
    const pts = Number(p.pts ?? p.dts);
    const dts = Number(p.dts ?? p.pts);
    if (isVideo) videoTicks.push(pts);
    packets.push({
      stream: isVideo ? "video" : "audio",
      pts: (pts * tb.num) / tb.den,
      dts: (dts * tb.num) / tb.den,
      keyframe: p.flags?.startsWith("K") === true,
      ...(payloadHashes[i] === undefined ? {} : { hash: payloadHashes[i] }),
    });
  }

  const frame = 1 / plan.fps;
  const frames = packets.filter((p) => p.stream === "video").length;
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
  if (pieces !== undefined) {
    const found = checkPackets(packets, pieces, plan.totalFrames, plan.fps, extradataHash);
    if (found.length > 0) throw fail(found);
  }
  if (audioCopy !== undefined) {
    const found = checkCopiedAudio(packets, audioCopy);
    if (found.length > 0) throw fail(found);
  }
  if (options.report !== undefined) {
    options.report.packetsChecked = packets.length;
    options.report.copiedFramesMatched = (pieces ?? [])
      .filter((piece) => piece.copy !== undefined)
      .reduce((sum, piece) => sum + piece.frames, 0);
  }

  const mode: DecodeMode = options.decode ?? (options.decodeCheck === false ? "off" : "partial");
  if (mode !== "off") {
    // Presentation order: frame n's timestamp (ticks) and whether it is a keyframe.
    const order = packets
      .filter((p) => p.stream === "video")
      .map((p, i) => ({ p, ticks: videoTicks[i]! }))
      .sort((a, b) => a.ticks - b.ticks);
    let ranges: FrameRange[] = [{ from: 0, to: plan.totalFrames }];
    if (mode === "partial" && pieces !== undefined) {
      ranges = fromKeyframes(
        decodeRanges(pieces, plan.totalFrames),
        order.map((o) => o.p.keyframe),
      );
    }
    const whole = ranges.length === 1 && ranges[0]!.from === 0 && ranges[0]!.to >= plan.totalFrames;
    const listFile = path.join(path.dirname(file), `.decode-${randomUUID()}.ffconcat`);
    if (!whole) {
      const micros = (ticks: number, round: "up" | "down") => {
        const exact = (ticks * videoTb.num * 1_000_000) / videoTb.den;
        return (round === "up" ? Math.ceil(exact) : Math.floor(exact)) / 1_000_000;
      };
      const quoted = `'${file.replaceAll("'", "'\\''")}'`;
      const lines = ranges.flatMap((range) => [
        `file ${quoted}`,
        // The demuxer reopens the file for every range; probing it again only decoded its first frames
        // (the stream's parameters are in the container's header): ≈ 16 ms a range.
        "option probesize 32",
        `inpoint ${micros(order[range.from]!.ticks, "up").toFixed(6)}`,
        ...(range.to < order.length ? [`outpoint ${micros(order[range.to]!.ticks, "down").toFixed(6)}`] : []),
      ]);
      await writeFile(listFile, `ffconcat version 1.0\n${lines.join("\n")}\n`);
    }
    const decoded = whole ? plan.totalFrames : rangeFrames(ranges);
    // Audio that is the cached song's packets (checked above) was decoded when the song was stored.
    const audioDecoded = whole || audioCopy === undefined;
    if (options.report !== undefined) {
      options.report.decodedFrames = decoded;
      options.report.decodeRanges = whole ? 1 : ranges.length;
      options.report.audioDecoded = audioDecoded;
    }
    // Without -threads FFmpeg sizes itself from the CPUs it sees, not the quota it is granted.
    const threads = String(Math.max(1, Math.floor(options.threads ?? 1)));
    const input = pinnedInput(file, DEMUXERS[plan.format]);
    const args = whole
      ? ["-filter_threads", threads, "-threads", threads, ...input, "-f", "null", "-"]
      : [
          "-filter_threads",
          threads,
          "-threads",
          threads,
          // The job's own list over the job's own output: local files only.
          "-f",
          "concat",
          "-safe",
          "0",
          "-protocol_whitelist",
          "file",
          "-i",
          listFile,
          ...(audioDecoded
            ? [
                "-threads",
                threads,
                ...input,
                // Two outputs, so neither waits on the other's timestamps.
                "-map",
                "0:v:0",
                "-f",
                "null",
                "-",
                "-map",
                "1:a:0",
              ]
            : ["-map", "0:v:0"]),
          "-f",
          "null",
          "-",
        ];
    try {
      const { stderr } = await runFfmpeg(["-hide_banner", "-nostdin", "-v", "error", ...args], {
        ffmpegPath: options.ffmpegPath,
        signal: options.signal,
        logger: options.logger,
        timeoutMs: Math.ceil(
          30_000 +
            2_000 * (decoded / plan.fps) * Math.max(1, (plan.width * plan.height) / (1280 * 720)) +
            (whole ? 0 : 200 * plan.duration),
        ),
        label: whole
          ? "decoding the rendered video to check it"
          : "decoding the rendered video (the parts this job encoded and every join) to check it",
      }).catch((err: unknown) => {
        if (err instanceof JobError && err.code === "FFMPEG_FAILED") {
          throw fail([`it does not decode cleanly (${err.message})`], err.details);
        }
        throw err;
      });
      if (stderr.trim() !== "") {
        const first = redactPaths(stderr.trim().split("\n")[0] ?? "");
        throw fail([`decoding it reports errors (${first})`], { stderr: redactPaths(stderr.slice(-4000)) });
      }
    } finally {
      if (!whole) await rm(listFile, { force: true });
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
