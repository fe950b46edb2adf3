/**
 * `npm run bench`: the job against the Python job's pipeline and the stream-copy bound, on the same
 * machine, media and run (SPEC §7). Writes BENCHMARKS.md.
 *
 *   npm run bench                       # generated reference workload (29 moves × 8 s, 720p30)
 *   npm run bench -- --media DIR        # real clips (DIR/clips/*.mp4) and a song (DIR/songs/*)
 *   npm run bench -- --cpus 1           # pin everything to one core, like Cloud Run's 1 vCPU
 *   npm run bench -- --moves 6          # a quick smoke run
 */
import { execFileSync } from "node:child_process";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type Measurement, measure } from "./bench/measure.js";
import { benchBlueprint, generateWorkload, readWorkload, type Workload } from "./bench/workload.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    media: { type: "string" },
    cpus: { type: "string" },
    moves: { type: "string", default: "29" },
    out: { type: "string", default: "BENCHMARKS.md" },
  },
});
const moveCount = Number(values.moves);
const pinned = values.cpus === undefined ? undefined : Number(values.cpus);
const MOVE_SECONDS = 8;
const KEPT_MARKER = "<!-- kept by npm run bench -->";
const FPS = 30;

const benchDir = path.join(root, ".cache", "bench");
const workload: Workload =
  values.media !== undefined
    ? await readWorkload(path.resolve(values.media))
    : await generateWorkload(path.join(benchDir, "media"), moveCount, moveCount * MOVE_SECONDS + 10);
const runDir = path.join(benchDir, "run");
await rm(runDir, { recursive: true, force: true });
await mkdir(runDir, { recursive: true });

function probeFrames(file: string): { frames: number; video: number; audio: number } {
  const out = execFileSync(
    "ffprobe",
    [
      "-v",
      "error",
      "-count_packets",
      "-show_entries",
      "stream=codec_type,nb_read_packets,duration",
      "-of",
      "json",
      file,
    ],
    { encoding: "utf8" },
  );
  const streams = (JSON.parse(out) as { streams: Array<Record<string, string>> }).streams;
  const video = streams.find((s) => s["codec_type"] === "video");
  const audio = streams.find((s) => s["codec_type"] === "audio");
  return {
    frames: Number(video?.["nb_read_packets"] ?? 0),
    video: Number(video?.["duration"] ?? 0),
    audio: Number(audio?.["duration"] ?? 0),
  };
}

/** Lowest SSIM (All) over every 30th frame of two videos of the same length. */
function minSsim(a: string, b: string): number {
  const sample = "select='not(mod(n\\,30))',setpts=N/FRAME_RATE/TB";
  const out = execFileSync(
    "ffmpeg",
    [
      "-hide_banner",
      "-nostdin",
      "-v",
      "error",
      "-i",
      a,
      "-i",
      b,
      "-lavfi",
      `[0:v]${sample}[a];[1:v]${sample}[b];[a][b]ssim=stats_file=-`,
      "-f",
      "null",
      "-",
    ],
    { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  const values = [...out.matchAll(/All:([\d.]+)/g)].map((m) => Number(m[1]));
  return values.length === 0 ? Number.NaN : Math.min(...values);
}

/** The job as users run it: the built CLI, env vars, local storage, embedded PostgreSQL. */
async function runJob(
  name: string,
  tag: string,
  blueprint: Record<string, unknown>,
  extraEnv: Record<string, string> = {},
) {
  const file = path.join(runDir, `${tag}.json`);
  await writeFile(file, JSON.stringify(blueprint));
  const tmp = path.join(runDir, `tmp-${tag}`);
  await mkdir(tmp, { recursive: true });
  const env = {
    PATH: process.env["PATH"] ?? "",
    HOME: process.env["HOME"] ?? "/tmp",
    TMPDIR: tmp,
    LOCAL_STORAGE_ROOT: workload.root,
    LOG_FORMAT: "json",
    LOG_LEVEL: "warn",
    ...extraEnv,
  };
  return measure({
    name,
    command: process.execPath,
    args: [path.join(root, "dist", "main.js"), "--blueprint", file],
    env,
    tempDir: tmp,
    cpus: pinned,
  });
}

/** The Python job's pipeline as its three FFmpeg steps (it ignored trims and transitions). */
async function runOldPipeline(keys: string[]): Promise<Measurement> {
  const dir = path.join(runDir, "old");
  await mkdir(dir, { recursive: true });
  const lines = ["set -e", `cd '${dir}'`];
  const parts: string[] = [];
  keys.forEach((key, index) => {
    const part = `part_${index}.mp4`;
    parts.push(`file '${part}'`);
    lines.push(
      `ffmpeg -hide_banner -v error -y -i '${path.join(workload.root, key)}' -r ${FPS} -c:v libx264 -preset ultrafast -crf 18 -c:a aac ${part}`,
    );
  });
  await writeFile(path.join(dir, "concat.txt"), `${parts.join("\n")}\n`);
  lines.push("ffmpeg -hide_banner -v error -y -f concat -safe 0 -i concat.txt -c copy temp_video.mp4");
  lines.push(
    `ffmpeg -hide_banner -v error -y -i temp_video.mp4 -i '${path.join(workload.root, workload.song)}' -map 0:v -map 1:a -c:v libx264 -preset medium -b:v 2M -c:a aac -b:a 128k -shortest output.mp4`,
  );
  const script = path.join(runDir, "old-pipeline.sh");
  await writeFile(script, `${lines.join("\n")}\n`);
  return measure({ name: "old pipeline", command: "bash", args: [script], tempDir: dir, cpus: pinned });
}

/** Concatenating the same clips without encoding: the I/O bound (its output ignores the timeline). */
async function runCopyBound(keys: string[]): Promise<Measurement> {
  const dir = path.join(runDir, "copy");
  await mkdir(dir, { recursive: true });
  const list = keys.map((key) => `file '${path.join(workload.root, key)}'`).join("\n");
  await writeFile(path.join(dir, "concat.txt"), `${list}\n`);
  return measure({
    name: "stream-copy bound",
    command: "ffmpeg",
    args: [
      "-hide_banner",
      "-v",
      "error",
      "-y",
      "-f",
      "concat",
      "-safe",
      "0",
      "-i",
      path.join(dir, "concat.txt"),
      "-c",
      "copy",
      path.join(dir, "out.mp4"),
    ],
    tempDir: dir,
    cpus: pinned,
  });
}

process.stdout.write("building the CLI\n");
execFileSync("npm", ["run", "-s", "build"], { cwd: root, stdio: "inherit" });

const moveKeys = Array.from({ length: moveCount }, (_, i) => workload.clips[i % workload.clips.length]!);
const expectedFrames = moveCount * MOVE_SECONDS * FPS;
const cacheDir = path.join(workload.root, ".clip-cache");

// Untimed warm-up: initialises the embedded database and the page cache, as on a laptop's second run.
await runJob(
  "warm-up",
  "warmup",
  benchBlueprint(workload, {
    taskId: `bench-warmup-${Date.now().toString(36)}`,
    moves: 1,
    moveSeconds: 2,
    transition: "cut",
    output: "output/bench_warmup.mp4",
  }),
  { CLIP_CACHE: "off" },
);

// Task rows persist in the embedded database: unique ids per invocation, or a completed row from an
// earlier bench would make the job skip (idempotent retry) and the old output be measured.
const runId = Date.now().toString(36);
const results: Array<Measurement & { verified: string }> = [];
const record = (m: Measurement, output?: string) => {
  let verified = "";
  if (output !== undefined && m.exitCode === 0) {
    const p = probeFrames(output);
    const av = Math.abs(p.video - p.audio);
    verified = `${p.frames}/${expectedFrames} frames, A/V Δ ${(av * 1000).toFixed(1)} ms`;
  } else if (m.exitCode !== 0) {
    verified = `FAILED (exit ${m.exitCode}): ${m.stderrTail.split("\n").slice(-2).join(" ")}`;
  }
  results.push({ ...m, verified });
  process.stdout.write(
    `${m.name}: ${m.wallSeconds.toFixed(1)} s wall, ${m.cpuSeconds.toFixed(1)} CPU-s, ${m.peakRssPlusTempMiB.toFixed(0)} MiB RSS+temp ${verified}\n`,
  );
};

for (const transition of ["crossfade", "cut"] as const) {
  const output = `output/bench_${transition}.mp4`;
  const blueprint = benchBlueprint(workload, {
    taskId: `bench-${transition}-${runId}`,
    moves: moveCount,
    moveSeconds: MOVE_SECONDS,
    transition,
    output,
  });
  const label = `job, ${transition === "cut" ? "cuts only" : `${moveCount - 1} crossfades`}`;
  await rm(cacheDir, { recursive: true, force: true });
  await rm(path.join(workload.root, output), { force: true });
  record(await runJob(`${label}, cold`, `${transition}-cold`, blueprint), path.join(workload.root, output));
  const coldCopy = path.join(runDir, `${transition}-cold.mp4`);
  await rename(path.join(workload.root, output), coldCopy).catch(() => {});
  const again = { ...blueprint, task_id: `bench-${transition}-warm-${runId}` };
  await rm(path.join(workload.root, output), { force: true });
  record(await runJob(`${label}, warm cache`, `${transition}-warm`, again), path.join(workload.root, output));
  const ssim = minSsim(coldCopy, path.join(workload.root, output));
  results.at(-1)!.verified += `, SSIM vs cold ≥ ${ssim.toFixed(4)}`;
  process.stdout.write(`warm vs cold: min SSIM ${ssim.toFixed(4)} over every 30th frame\n`);
  if (transition === "crossfade") {
    const off = { ...blueprint, task_id: `bench-${transition}-off-${runId}` };
    await rm(path.join(workload.root, output), { force: true });
    record(
      await runJob(`${label}, CLIP_CACHE=off (segments)`, `${transition}-off`, off, { CLIP_CACHE: "off" }),
      path.join(workload.root, output),
    );
    const offSsim = minSsim(coldCopy, path.join(workload.root, output));
    results.at(-1)!.verified += `, SSIM vs cache ≥ ${offSsim.toFixed(4)}`;
  }
}
const old = await runOldPipeline(moveKeys);
record(old, path.join(runDir, "old", "output.mp4"));
const bound = await runCopyBound(moveKeys);
record(bound);

const ffmpegVersion = execFileSync("ffmpeg", ["-version"], { encoding: "utf8" }).split("\n")[0] ?? "";
const cpuModel = cpus()[0]?.model ?? "unknown CPU";
const ratio = (value: number, base: number) => (base > 0 ? `${(value / base).toFixed(2)}×` : "–");
const rows = results.map(
  (r) =>
    `| ${r.name} | ${r.wallSeconds.toFixed(1)} | ${r.cpuSeconds.toFixed(1)} | ${r.peakRssMiB.toFixed(0)} | ${r.peakTempMiB.toFixed(0)} | ${r.peakRssPlusTempMiB.toFixed(0)} | ${ratio(r.wallSeconds, old.wallSeconds)} | ${ratio(r.wallSeconds, bound.wallSeconds)} | ${r.verified} |`,
);
const report = `# Benchmarks

Generated by \`npm run bench\`${values.media !== undefined ? " with real media" : ""}${pinned !== undefined ? ` pinned to ${pinned} CPU` : ""}.
Workload: ${moveCount} moves × ${MOVE_SECONDS} s = ${moveCount * MOVE_SECONDS} s at ${FPS} fps (${workload.clips.length} clips, 720p30
H.264 High, keyframe every 250 frames, AAC), one song; every row ran in the same invocation on the same files.

Machine: ${cpus().length} × ${cpuModel}; ${ffmpegVersion}.

| run | wall s | CPU s | peak RSS MiB | peak temp MiB | peak RSS+temp MiB | wall vs old | wall vs copy bound | output |
|---|---|---|---|---|---|---|---|---|
${rows.join("\n")}

- **job**: the built CLI as users run it (env vars, local storage, embedded PostgreSQL; the database server's
  own memory is left out of RSS as it is not part of a Cloud Run execution). *Cold* starts with an empty clip
  cache; *warm* runs again with the cache the cold run filled.
- **old pipeline**: the Python job's three steps — every clip re-encoded (ultrafast, CRF 18, 30 fps), concat with
  stream copy, the whole video re-encoded at 2 Mb/s \`medium\` with the song. It ignores trims and transitions.
- **stream-copy bound**: the same clips concatenated without encoding — the I/O floor; its output is not a
  correct render.
- RSS is summed over the whole process tree (sampled every 100 ms); temp is the bytes in the run's temp
  directory; CPU s is user+system time of the whole tree.
`;
// Sections below the marker are kept (one-vCPU figures measured separately, see BENCHMARKS.md).
const outFile = path.resolve(root, values.out);
const previous = await readFile(outFile, "utf8").catch(() => "");
const kept = previous.indexOf(KEPT_MARKER);
await writeFile(outFile, kept === -1 ? report : `${report}\n${previous.slice(kept)}`);
process.stdout.write(`\n${report}`);
