import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";

function ffmpeg(args: string[]): void {
  execFileSync("ffmpeg", ["-hide_banner", "-v", "error", "-y", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
}

/** A solid-colour clip with a moving box, so frames differ and colours identify the clip. */
export function makeClip(file: string, colour: string, seconds: number, size = "320x240", fps = 30): void {
  mkdirSync(path.dirname(file), { recursive: true });
  ffmpeg([
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
    file,
  ]);
}

export function makeSong(file: string, seconds: number): void {
  mkdirSync(path.dirname(file), { recursive: true });
  ffmpeg(["-f", "lavfi", "-i", `sine=f=440:d=${seconds}:sample_rate=48000`, "-ac", "2", "-c:a", "aac", file]);
}

export interface ProbedVideo {
  frames: number;
  videoDuration: number;
  audioDuration: number;
  width: number;
  height: number;
}

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
