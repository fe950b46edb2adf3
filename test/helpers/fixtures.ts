/**
 * Deterministic media fixtures generated with FFmpeg's lavfi sources at test time, cached under
 * `.cache/fixtures/` keyed on the generating arguments (change an argument, get a new file).
 * Clips are small (160–320 px, 1–3 s): a solid colour per clip plus a moving white marker, so every
 * frame differs and a frame's colour tells which clip it came from.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const FIXTURE_DIR = path.join(ROOT, ".cache", "fixtures");

export interface ClipSpec {
  /** FFmpeg colour name or 0xRRGGBB; ignored for `timecode` clips. */
  colour: string;
  width: number;
  height: number;
  fps: number;
  seconds: number;
  /** Sample aspect ratio, e.g. "4/3" (pixels wider than tall). */
  sar?: string;
  /** Rotation metadata (clockwise degrees as the `rotate` tag). */
  rotate?: 90 | 180 | 270;
  /** Drop every 5th frame (from 2): variable frame rate with gaps, like phone footage. */
  vfr?: boolean;
  /** Include an AAC audio stream (clips' audio must be ignored). */
  audio?: boolean;
  /** Grey level encodes the source time: luma = 16 + 70·t (instead of a colour + marker). */
  timecode?: boolean;
}

/**
 * `dir/name`, made once by `make(partial)`: parallel test files may make the same file, so each writes
 * aside and renames atomically.
 */
export function cachedFile(dir: string, name: string, make: (partial: string) => void): string {
  const file = path.join(dir, name);
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  const partial = path.join(dir, `.${process.pid}.${name}`);
  try {
    make(partial);
    renameSync(partial, file);
  } finally {
    rmSync(partial, { force: true });
  }
  return file;
}

/** Runs FFmpeg quietly (errors on stderr go into the thrown error). */
export function ffmpeg(args: string[]): void {
  execFileSync("ffmpeg", ["-hide_banner", "-nostdin", "-v", "error", "-y", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
}

/** The output of `ffmpeg <args> <file>`, cached under a name keyed on the arguments. */
function generate(name: string, ext: string, args: string[]): string {
  const hash = createHash("sha256").update(JSON.stringify(args)).digest("hex").slice(0, 12);
  return cachedFile(FIXTURE_DIR, `${name}-${hash}.${ext}`, (partial) => ffmpeg([...args, partial]));
}

/** Generates (or reuses) a clip. */
export function makeClipFixture(name: string, spec: ClipSpec): string {
  const { width, height, fps, seconds } = spec;
  const size = `${width}x${height}`;
  const inputs = spec.timecode
    ? ["-f", "lavfi", "-i", `nullsrc=s=${size}:r=${fps}:d=${seconds},geq=lum='16+70*T':cb=128:cr=128`]
    : [
        "-f",
        "lavfi",
        "-i",
        `color=c=${spec.colour}:s=${size}:r=${fps}:d=${seconds}`,
        "-f",
        "lavfi",
        "-i",
        `color=c=white:s=8x8:r=${fps}:d=${seconds}`,
      ];
  const graph = spec.timecode ? "[0:v]null" : "[0:v][1:v]overlay=x='mod(t*60,W-8)':y=4:eval=frame";
  const post = [
    ...(spec.vfr ? ["select='not(eq(mod(n,5),2))'"] : []),
    ...(spec.sar !== undefined ? [`setsar=${spec.sar}`] : []),
    "format=yuv420p",
  ];
  const audioInput = spec.audio ? ["-f", "lavfi", "-i", `sine=f=330:d=${seconds}:sample_rate=44100`] : [];
  const audioIndex = spec.timecode ? 1 : 2;
  const encoded = generate(spec.rotate === undefined ? name : `${name}-unrotated`, "mp4", [
    ...inputs,
    ...audioInput,
    "-filter_complex",
    `${graph},${post.join(",")}[v]`,
    "-map",
    "[v]",
    ...(spec.audio ? ["-map", `${audioIndex}:a`, "-c:a", "aac", "-b:a", "64k"] : []),
    ...(spec.vfr ? ["-fps_mode", "vfr"] : []),
    "-t",
    String(seconds),
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-crf",
    spec.timecode ? "8" : "18",
    "-g",
    String(fps * 2),
  ]);
  if (spec.rotate === undefined) return encoded;
  // FFmpeg 5.1 turns the `rotate` tag into a display matrix on stream copy only.
  return generate(name, "mp4", ["-i", encoded, "-c", "copy", "-metadata:s:v:0", `rotate=${spec.rotate}`]);
}

/** A stereo 48 kHz AAC song: a steady tone (so silence after it is measurable). */
export function makeSongFixture(name: string, seconds: number): string {
  return generate(name, "m4a", [
    "-f",
    "lavfi",
    "-i",
    `sine=f=440:d=${seconds}:sample_rate=48000`,
    "-af",
    "volume=0.5",
    "-ac",
    "2",
    "-c:a",
    "aac",
    "-b:a",
    "96k",
  ]);
}

/** A text file with a video extension, and an empty one: probe errors. */
export function makeBrokenFixtures(): { text: string; empty: string } {
  mkdirSync(FIXTURE_DIR, { recursive: true });
  const text = path.join(FIXTURE_DIR, "not-a-video.mp4");
  const empty = path.join(FIXTURE_DIR, "empty.mp4");
  if (!existsSync(text)) execFileSync("sh", ["-c", 'printf "hello, I am not a video\\n" > "$1"', "sh", text]);
  if (!existsSync(empty)) execFileSync("sh", ["-c", ': > "$1"', "sh", empty]);
  return { text, empty };
}

/** The fixture library the media tests use. Colours are chosen far apart in YUV. */
export const CLIPS = {
  red: { colour: "red", width: 320, height: 240, fps: 30, seconds: 2 },
  green: { colour: "green", width: 320, height: 240, fps: 30, seconds: 2 },
  blue: { colour: "blue", width: 320, height: 240, fps: 25, seconds: 2 },
  /** 16:9, 60 fps, short. */
  yellow: { colour: "yellow", width: 256, height: 144, fps: 60, seconds: 1.5 },
  /** Portrait: must be padded left/right in a landscape output. */
  portrait: { colour: "magenta", width: 160, height: 288, fps: 30, seconds: 2 },
  /** 240×240 coded, SAR 4:3 → displays as 320×240. */
  anamorphic: { colour: "cyan", width: 240, height: 240, fps: 30, seconds: 2, sar: "4/3" },
  /** Coded landscape with rotate=90: displays portrait. */
  rotated: { colour: "orange", width: 320, height: 176, fps: 30, seconds: 2, rotate: 90 },
  /** Variable frame rate, grey level = time. */
  vfr: { colour: "gray", width: 320, height: 240, fps: 30, seconds: 3, vfr: true, timecode: true },
  /** Constant 30 fps, grey level = time. */
  timecode: { colour: "gray", width: 320, height: 240, fps: 30, seconds: 3, timecode: true },
  /** Has its own audio (must be ignored). */
  withAudio: { colour: "purple", width: 320, height: 240, fps: 30, seconds: 2, audio: true },
  /** Shorter than the moves that use it: last frame held. */
  short: { colour: "olive", width: 320, height: 240, fps: 30, seconds: 1 },
} as const satisfies Record<string, ClipSpec>;

export type ClipName = keyof typeof CLIPS;

export function clipFixture(name: ClipName): string {
  return makeClipFixture(name, CLIPS[name]);
}

/** Copies a generated file to `file` (creating its directory). */
function place(source: string, file: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  copyFileSync(source, file);
}

/**
 * A solid-colour clip with a moving 20 px box and a 330 Hz tone, written to `file` (the end-to-end
 * suites' library: default x264 GOP, so a 2 s clip has one keyframe).
 */
export function makeClip(file: string, colour: string, seconds: number, size = "320x240", fps = 30): void {
  const clip = generate(`e2e-${colour}`, "mp4", [
    "-f",
    "lavfi",
    "-i",
    `color=c=${colour}:s=${size}:r=${fps}:d=${seconds},drawbox=x='mod(t*80,iw)':y=10:w=20:h=20:c=white:t=fill`,
    "-f",
    "lavfi",
    "-i",
    `sine=f=330:d=${seconds}`,
    "-shortest",
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-pix_fmt",
    "yuv420p",
    "-c:a",
    "aac",
  ]);
  place(clip, file);
}

/** A stereo 48 kHz AAC tone of `seconds`, written to `file` (any extension: the container is chosen by it). */
export function makeSong(file: string, seconds: number): void {
  const ext = path.extname(file).slice(1) || "m4a";
  const song = generate("e2e-song", ext, [
    "-f",
    "lavfi",
    "-i",
    `sine=f=440:d=${seconds}:sample_rate=48000`,
    "-ac",
    "2",
    "-c:a",
    "aac",
  ]);
  place(song, file);
}
