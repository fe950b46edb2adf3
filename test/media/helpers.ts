/** Shared helpers for the media tests: blueprints built by hand, rendering, frame and audio measurements. */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Blueprint, Move, OutputConfig } from "../../src/blueprint/types.js";
import { silentLogger } from "../../src/log.js";
import type { MediaInfo } from "../../src/media/media-info.js";
import { planRender, type RenderPlan } from "../../src/media/plan.js";
import { probeMedia } from "../../src/media/probe.js";
import { renderVideo } from "../../src/media/render.js";
import { type VerifiedOutput, verifyOutput } from "../../src/media/verify.js";

export type MoveInput = Pick<Move, "video_path" | "duration"> & Partial<Move>;

/** A validated-looking blueprint: moves tile from 0, defaults applied as the parser would. */
export function makeBlueprint(moves: MoveInput[], output: Partial<OutputConfig> = {}): Blueprint {
  let start = 0;
  const full: Move[] = moves.map((move, i) => {
    const m: Move = {
      clip_id: `move_${i + 1}`,
      start_time: start,
      transition_type: "cut",
      trim_start: 0,
      trim_end: 0,
      volume_adjustment: 1,
      ...move,
    };
    start = m.start_time + m.duration;
    return m;
  });
  const format = output.output_format ?? "mp4";
  return {
    task_id: "test-task",
    audio_path: "songs/song.m4a",
    moves: full,
    total_duration: start,
    output_config: {
      output_path: `output/out.${format}`,
      output_format: format,
      video_codec: "libx264",
      audio_codec: "aac",
      audio_bitrate: "96k",
      crf: 23,
      preset: "ultrafast",
      frame_rate: 30,
      transition_duration: 0.5,
      fade_duration: 0,
      normalize_audio: false,
      ...output,
    },
    warnings: [],
  };
}

/** A MediaInfo for plan tests (no FFmpeg). */
export function fakeInfo(overrides: Partial<MediaInfo> = {}): MediaInfo {
  return {
    demuxer: "mov",
    duration: 10,
    hasVideo: true,
    hasAudio: false,
    width: 1280,
    height: 720,
    sar: 1,
    rotation: 0,
    displayWidth: 1280,
    displayHeight: 720,
    fps: 30,
    variableFrameRate: false,
    videoCodec: "h264",
    ...overrides,
  };
}

export interface Rendered {
  plan: RenderPlan;
  file: string;
  verified: VerifiedOutput;
  dir: string;
}

/** Probes, plans, renders and verifies a blueprint whose keys map to local files. */
export async function render(
  blueprint: Blueprint,
  files: Record<string, string>,
  song: string,
  options: { concurrency?: number; onProgress?: (p: { percent: number }) => void; signal?: AbortSignal } = {},
): Promise<Rendered> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "media-test-"));
  const signal = options.signal ?? new AbortController().signal;
  try {
    return await renderIn(dir, blueprint, files, song, signal, options);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function renderIn(
  dir: string,
  blueprint: Blueprint,
  files: Record<string, string>,
  song: string,
  signal: AbortSignal,
  options: { concurrency?: number; onProgress?: (p: { percent: number }) => void },
): Promise<Rendered> {
  const infos = new Map<string, MediaInfo>();
  const used = new Set(blueprint.moves.map((m) => m.video_path));
  for (const [key, file] of Object.entries(files))
    if (used.has(key)) infos.set(key, await probeMedia(file, key, { signal }));
  const audio = await probeMedia(song, blueprint.audio_path, { signal });
  const plan = planRender(blueprint, infos, audio);
  const file = path.join(dir, `out.${blueprint.output_config.output_format}`);
  await renderVideo(plan, {
    inputs: new Map(Object.entries(files)),
    audio: song,
    workDir: path.join(dir, "render"),
    output: file,
    signal,
    logger: silentLogger(),
    concurrency: options.concurrency ?? 2,
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
  });
  const verified = await verifyOutput(file, plan, {});
  return { plan, file, verified, dir };
}

export function cleanup(rendered: { dir: string } | undefined): void {
  if (rendered !== undefined) rmSync(rendered.dir, { recursive: true, force: true });
}

export interface FrameStats {
  y: number;
  u: number;
  v: number;
}

/** signalstats averages of every frame of the first video stream (one decode), optionally cropped. */
export function frameStats(file: string, crop?: string): FrameStats[] {
  const out = execFileSync(
    "ffmpeg",
    [
      "-hide_banner",
      "-nostdin",
      "-v",
      "error",
      "-i",
      file,
      "-map",
      "0:v:0",
      "-vf",
      `${crop === undefined ? "" : `crop=${crop},`}signalstats,metadata=print:file=-`,
      "-f",
      "null",
      "-",
    ],
    { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
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
