/**
 * The reference workload of SPEC §7: 720p30 H.264 High clips like the real library (B-frames, a
 * keyframe every 250 frames ≈ 8.3 s, AAC 48 kHz stereo, 8.4–12 s long, with motion and grain), a song,
 * and blueprints of 29 moves × 8 s (crossfade-heavy and cut-only).
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, rename } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface Workload {
  /** Directory used as LOCAL_STORAGE_ROOT: holds clips/ and songs/. */
  root: string;
  clips: string[];
  song: string;
}

async function ffmpeg(args: string[]): Promise<void> {
  await run("ffmpeg", ["-hide_banner", "-v", "error", "-y", ...args], { maxBuffer: 1 << 24 });
}

async function secondsOf(file: string): Promise<number> {
  const { stdout } = await run("ffprobe", [
    "-v",
    "error",
    "-show_entries",
    "format=duration",
    "-of",
    "csv=p=0",
    file,
  ]);
  return Number(stdout.trim());
}

function clipSeconds(index: number): number {
  return Math.round((8.4 + ((index * 1.37) % 3.6)) * 10) / 10;
}

async function makeClip(file: string, index: number): Promise<void> {
  const seconds = clipSeconds(index);
  const partial = `${file}.partial.mp4`;
  await ffmpeg([
    "-f",
    "lavfi",
    "-i",
    `testsrc2=s=1280x720:r=30:d=${seconds},hue=h=${(index * 37) % 360}:s=1.2,noise=alls=6:allf=t`,
    "-f",
    "lavfi",
    "-i",
    `sine=f=${180 + index * 7}:sample_rate=48000:d=${seconds}`,
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-profile:v",
    "high",
    "-pix_fmt",
    "yuv420p",
    "-g",
    "250",
    "-keyint_min",
    "250",
    "-sc_threshold",
    "0",
    "-b:v",
    "3M",
    "-c:a",
    "aac",
    "-ac",
    "2",
    "-b:a",
    "128k",
    "-movflags",
    "+faststart",
    partial,
  ]);
  await rename(partial, file);
}

async function makeSong(file: string, seconds: number): Promise<void> {
  const expr =
    "0.35*sin(2*PI*55*t)*exp(-6*(t-0.4644*floor(t/0.4644)))+0.12*sin(2*PI*220*t)*(0.6+0.4*sin(2*PI*0.25*t))+0.08*sin(2*PI*330*t)";
  const partial = `${file}.partial.mp3`;
  await ffmpeg([
    "-f",
    "lavfi",
    "-i",
    `aevalsrc=${expr}|${expr}:s=44100:d=${seconds}`,
    "-c:a",
    "libmp3lame",
    "-b:a",
    "192k",
    partial,
  ]);
  await rename(partial, file);
}

/** Generates the workload under `dir` (reused when already there), two clips at a time. */
export async function generateWorkload(
  dir: string,
  clipCount: number,
  songSeconds: number,
): Promise<Workload> {
  await mkdir(path.join(dir, "clips"), { recursive: true });
  await mkdir(path.join(dir, "songs"), { recursive: true });
  const clips = Array.from(
    { length: clipCount },
    (_, i) => `clips/clip_${String(i + 1).padStart(2, "0")}.mp4`,
  );
  const queue = clips.map((key, index) => ({ key, index }));
  const worker = async () => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      const file = path.join(dir, next.key);
      if (!existsSync(file)) await makeClip(file, next.index);
    }
  };
  await Promise.all([worker(), worker()]);
  const song = "songs/song.mp3";
  // A song left by a shorter run (--moves 4) would be padded with silence: made again at this length.
  const songFile = path.join(dir, song);
  if (!existsSync(songFile) || (await secondsOf(songFile)) < songSeconds - 1)
    await makeSong(songFile, songSeconds);
  return { root: dir, clips, song };
}

/** Real media: `DIR/clips/*.mp4` (or .mov) and the first file in `DIR/songs/`. */
export async function readWorkload(dir: string): Promise<Workload> {
  const clips = (await readdir(path.join(dir, "clips")))
    .filter((name) => /\.(mp4|mov)$/i.test(name))
    .sort()
    .map((name) => `clips/${name}`);
  const songs = (await readdir(path.join(dir, "songs"))).sort();
  if (clips.length === 0 || songs[0] === undefined) {
    throw new Error(`--media ${dir}: expected clips/*.mp4 and a song in songs/`);
  }
  return { root: dir, clips, song: `songs/${songs[0]}` };
}

export function benchBlueprint(
  workload: Workload,
  options: {
    taskId: string;
    moves: number;
    moveSeconds: number;
    transition: "cut" | "crossfade";
    output: string;
  },
): Record<string, unknown> {
  const moves = Array.from({ length: options.moves }, (_, i) => ({
    clip_id: `move_${i + 1}`,
    video_path: workload.clips[i % workload.clips.length],
    start_time: i * options.moveSeconds,
    duration: options.moveSeconds,
    transition_type: i === 0 ? "cut" : options.transition,
  }));
  return {
    task_id: options.taskId,
    audio_path: workload.song,
    moves,
    total_duration: options.moves * options.moveSeconds,
    output_config: {
      output_path: options.output,
      output_format: "mp4",
      video_codec: "libx264",
      audio_codec: "aac",
      frame_rate: 30,
      preset: "veryfast",
      transition_duration: 0.5,
    },
  };
}
