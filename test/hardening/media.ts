/**
 * Hostile and tiny media for the hardening suites, generated with FFmpeg once and cached under
 * `.cache/hardening/` (the 60-minute song too: a mono 8 kHz AAC encode of silence, a few seconds).
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { cachedFile, FIXTURE_DIR, ffmpeg, makeClipFixture, makeSongFixture } from "../helpers/fixtures.js";

const CACHE = path.join(path.dirname(FIXTURE_DIR), "hardening");

function cached(name: string, make: (file: string) => void): string {
  return cachedFile(CACHE, name, make);
}

export const TINY = { width: 160, height: 120, fps: 30, seconds: 1 } as const;

export function tinyClip(colour: string): string {
  return makeClipFixture(`hardening-${colour}`, { colour, ...TINY });
}

export function song(seconds = 2): string {
  return makeSongFixture(`hardening-song-${seconds}`, seconds);
}

export const HOSTILE = {
  /** moov atom at the end, second half cut: unreadable. */
  truncated: () =>
    cached("truncated.mp4", (file) => {
      const bytes = readFileSync(tinyClip("red"));
      writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    }),
  /** moov at the start (+faststart), data cut: the index promises frames that are not there. */
  truncatedFaststart: () =>
    cached("truncated-faststart.mp4", (file) => {
      const full = path.join(CACHE, `.${process.pid}.faststart.mp4`);
      ffmpeg(["-i", tinyClip("green"), "-c", "copy", "-movflags", "+faststart", "-f", "mp4", full]);
      const bytes = readFileSync(full);
      rmSync(full, { force: true });
      writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    }),
  text: () => cached("text.mp4", (file) => writeFileSync(file, "hello, I am not a video\n")),
  empty: () => cached("empty.mp4", (file) => writeFileSync(file, "")),
  audioOnly: () =>
    cached("audio-only.mp4", (file) =>
      ffmpeg(["-f", "lavfi", "-i", "sine=f=300:d=1", "-c:a", "aac", "-f", "mp4", file]),
    ),
  image: () =>
    cached("image.png", (file) =>
      ffmpeg(["-f", "lavfi", "-i", "color=c=yellow:s=160x120:d=1", "-frames:v", "1", "-f", "image2", file]),
    ),
  silentVideo: () => tinyClip("navy"),
  k4: () =>
    cached("4k.mp4", (file) =>
      ffmpeg([
        "-f",
        "lavfi",
        "-i",
        "color=c=teal:s=3840x2160:r=30:d=1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "mp4",
        file,
      ]),
    ),
  oneFrame: () =>
    cached("one-frame.mp4", (file) =>
      ffmpeg([
        "-f",
        "lavfi",
        "-i",
        "color=c=orange:s=160x120:r=30",
        "-frames:v",
        "1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "mp4",
        file,
      ]),
    ),
  song60min: () =>
    cached("song-60min.m4a", (file) =>
      ffmpeg([
        "-f",
        "lavfi",
        "-i",
        "sine=f=220:sample_rate=8000:d=3600",
        "-ac",
        "1",
        "-c:a",
        "aac",
        "-b:a",
        "8k",
        "-f",
        "mp4",
        file,
      ]),
    ),
};

/** Copies a cached file to `root/key`. */
export function place(root: string, key: string, source: string): void {
  const target = path.join(root, key);
  mkdirSync(path.dirname(target), { recursive: true });
  copyFileSync(source, target);
}
