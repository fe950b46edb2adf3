/**
 * The baseline both benchmarks measure in the same run as the job: the stream-copy bound — what any
 * correct job must at least do — the clips concatenated without encoding (the I/O floor; its output
 * ignores the timeline) plus the song encoded once (AAC 128k, the timeline's length); and a check that
 * two renders are the same video.
 */
import { execFileSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { type Measurement, measure } from "./measure.js";
import type { Workload } from "./workload.js";

/** Concatenating `keys` of the workload without encoding, in `dir`. */
export async function measureCopyConcat(
  workload: Workload,
  keys: readonly string[],
  dir: string,
  cpus?: number,
): Promise<Measurement> {
  await mkdir(dir, { recursive: true });
  const list = keys.map((key) => `file '${path.join(workload.root, key)}'`).join("\n");
  await writeFile(path.join(dir, "concat.txt"), `${list}\n`);
  return measure({
    name: "stream-copy bound",
    command: "ffmpeg",
    args: [
      ...["-hide_banner", "-v", "error", "-y", "-f", "concat", "-safe", "0"],
      ...["-i", path.join(dir, "concat.txt"), "-c", "copy", path.join(dir, "out.mp4")],
    ],
    tempDir: dir,
    ...(cpus === undefined ? {} : { cpus }),
  });
}

/** Encoding the workload's song once, as the job does (cut to `seconds`, AAC 128k), in `dir`. */
export async function measureSongEncode(
  workload: Workload,
  seconds: number,
  dir: string,
  cpus?: number,
): Promise<Measurement> {
  await mkdir(dir, { recursive: true });
  return measure({
    name: "song encode (AAC, once)",
    command: "ffmpeg",
    args: [
      ...["-hide_banner", "-v", "error", "-y", "-threads", "1"],
      ...["-i", path.join(workload.root, workload.song), "-t", String(seconds)],
      ...["-vn", "-ar", "48000", "-ac", "2", "-c:a", "aac", "-b:a", "128k", path.join(dir, "song.m4a")],
    ],
    tempDir: dir,
    ...(cpus === undefined ? {} : { cpus }),
  });
}

/** The bound's two parts as one row: wall and CPU added, memory the higher. */
export function boundOf(copy: Measurement, song: Measurement, name: string): Measurement {
  return {
    ...copy,
    name,
    exitCode: copy.exitCode || song.exitCode,
    wallSeconds: copy.wallSeconds + song.wallSeconds,
    cpuSeconds: copy.cpuSeconds + song.cpuSeconds,
    peakRssMiB: Math.max(copy.peakRssMiB, song.peakRssMiB),
    peakTempMiB: Math.max(copy.peakTempMiB, song.peakTempMiB),
    peakRssPlusTempMiB: Math.max(copy.peakRssPlusTempMiB, song.peakRssPlusTempMiB),
  };
}

/** MD5 of a file's video packets: equal → the same frames, byte for byte. */
export function videoMd5(file: string): string {
  return execFileSync(
    "ffmpeg",
    ["-hide_banner", "-v", "error", "-i", file, "-map", "0:v", "-c", "copy", "-f", "md5", "-"],
    { encoding: "utf8" },
  ).trim();
}
