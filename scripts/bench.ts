/**
 * `npm run bench`: the job against the Python job's pipeline and the stream-copy bound, on the same
 * machine, media and run (SPEC §7). Writes BENCHMARKS.md.
 *
 *   npm run bench                       # generated reference workload (29 moves × 8 s, 720p30)
 *   npm run bench -- --media DIR        # real clips (DIR/clips/*.mp4) and a song (DIR/songs/*)
 *   npm run bench -- --cpus 1           # pin everything to one core, like Cloud Run's 1 vCPU
 *   npm run bench -- --moves 6          # a quick smoke run
 *
 * Rows: cold and warm jobs (2 cores, or --cpus), the warm path with each lever of
 * docs/decisions/clip-cache.md taken away in turn (partial decode check, encoded-song cache, source-hash
 * memo), the warm job on one pinned vCPU, pre-warm throughput (`warm-cache`, clips per minute per task),
 * the Python pipeline and the stream-copy bound (concat without encoding + encoding the song once).
 */
import { execFileSync } from "node:child_process";
import { link, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { probeVideo } from "../test/helpers/measure.js";
import { boundOf, measureCopyConcat, measureSongEncode, videoMd5 } from "./bench/bound.js";
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
  cpuCount: number | undefined = pinned,
  stdoutFile?: string,
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
    cpus: cpuCount,
    ...(stdoutFile === undefined ? {} : { stdoutFile }),
  });
}

/** `warm-cache` over `count` clips of the workload, one task pinned to one CPU: clips per minute per task. */
async function runPrewarm(count: number): Promise<Measurement> {
  const prewarmRoot = path.join(runDir, "prewarm-root");
  await mkdir(path.join(prewarmRoot, "clips"), { recursive: true });
  // Hard links: the library's bytes, inside this root.
  for (const key of workload.clips.slice(0, count)) {
    await link(path.join(workload.root, key), path.join(prewarmRoot, key)).catch(async () => {
      await writeFile(path.join(prewarmRoot, key), await readFile(path.join(workload.root, key)));
    });
  }
  const tmp = path.join(runDir, "tmp-prewarm");
  await mkdir(tmp, { recursive: true });
  return measure({
    name: `warm-cache, ${count} clips, one task on one vCPU`,
    command: process.execPath,
    args: [
      path.join(root, "dist", "main.js"),
      "warm-cache",
      "--prefix",
      "clips",
      "--resolution",
      "1280x720",
      "--jobs",
      "1",
    ],
    env: {
      PATH: process.env["PATH"] ?? "",
      HOME: process.env["HOME"] ?? "/tmp",
      TMPDIR: tmp,
      LOCAL_STORAGE_ROOT: prewarmRoot,
      LOG_FORMAT: "json",
      LOG_LEVEL: "warn",
      VIDEO_PRESET: "veryfast",
    },
    tempDir: tmp,
    cpus: 1,
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
    const p = probeVideo(output);
    const av = Math.abs(p.videoDuration - p.audioDuration);
    verified = `${p.frames}/${expectedFrames} frames, A/V Δ ${(av * 1000).toFixed(1)} ms`;
  } else if (m.exitCode !== 0) {
    verified = `FAILED (exit ${m.exitCode}): ${m.stderrTail.split("\n").slice(-2).join(" ")}`;
  }
  results.push({ ...m, verified });
  process.stdout.write(
    `${m.name}: ${m.wallSeconds.toFixed(1)} s wall, ${m.cpuSeconds.toFixed(1)} CPU-s, ${m.peakRssPlusTempMiB.toFixed(0)} MiB RSS+temp ${verified}\n`,
  );
};

/** How a warm variant's output compares with the cold render: identical bytes, else the lowest SSIM. */
function sameAsCold(cold: string, file: string): string {
  if (videoMd5(cold) === videoMd5(file)) return "video identical to cold (SSIM 1)";
  return `SSIM vs cold ≥ ${minSsim(cold, file).toFixed(4)}`;
}

// Warm variants: each lever taken away in turn (docs/decisions/clip-cache.md).
const NO_FULL_DECODE = { VERIFY_DECODE: "full" };
const dropSongCache = () => rm(path.join(cacheDir, "songs"), { recursive: true, force: true });
const dropHashMemo = () => rm(path.join(cacheDir, "hash-memo"), { recursive: true, force: true });
type Variant = {
  label: string;
  env?: Record<string, string>;
  before?: () => Promise<unknown>;
  cpus?: number;
  /** Keep this run's info logs for the profile below the table. */
  profile?: boolean;
};
const profileLog = path.join(runDir, "profile-1cpu.jsonl");
const crossfadeVariants: Variant[] = [
  { label: "warm cache (all levers)" },
  { label: "warm, full decode check (VERIFY_DECODE=full)", env: NO_FULL_DECODE },
  { label: "warm, song encoded (song cache emptied)", before: dropSongCache },
  { label: "warm, sources hashed (hash memo emptied)", before: dropHashMemo },
  {
    label: "warm, no lever (full decode, song encoded, sources hashed)",
    env: NO_FULL_DECODE,
    before: () => Promise.all([dropSongCache(), dropHashMemo()]),
  },
  { label: "warm, one pinned vCPU (all levers)", cpus: 1, profile: true },
  {
    label: "warm, one pinned vCPU, no lever",
    env: NO_FULL_DECODE,
    before: () => Promise.all([dropSongCache(), dropHashMemo()]),
    cpus: 1,
  },
];

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
  const variants: Variant[] =
    transition === "crossfade" ? crossfadeVariants : [{ label: "warm cache (all levers)" }];
  for (const [i, variant] of variants.entries()) {
    await variant.before?.();
    const again = { ...blueprint, task_id: `bench-${transition}-warm${i}-${runId}` };
    await rm(path.join(workload.root, output), { force: true });
    record(
      await runJob(
        `${label}, ${variant.label}`,
        `${transition}-warm${i}`,
        again,
        { ...(variant.env ?? {}), ...(variant.profile === true ? { LOG_LEVEL: "info" } : {}) },
        variant.cpus ?? pinned,
        variant.profile === true ? profileLog : undefined,
      ),
      path.join(workload.root, output),
    );
    if (results.at(-1)!.exitCode === 0) {
      const same = sameAsCold(coldCopy, path.join(workload.root, output));
      results.at(-1)!.verified += `, ${same}`;
      process.stdout.write(`${variant.label}: ${same}\n`);
    }
  }
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
const PREWARM_CLIPS = Math.min(8, workload.clips.length);
const prewarm = await runPrewarm(PREWARM_CLIPS);
record(prewarm);
results.at(-1)!.verified =
  `${((PREWARM_CLIPS / prewarm.wallSeconds) * 60).toFixed(1)} clips/min per task (${(prewarm.wallSeconds / PREWARM_CLIPS).toFixed(1)} s per 8-s 720p clip)`;
const old = await runOldPipeline(moveKeys);
record(old, path.join(runDir, "old", "output.mp4"));
const copy = await measureCopyConcat(workload, moveKeys, path.join(runDir, "copy"), pinned);
record(copy);
const song = await measureSongEncode(workload, moveCount * MOVE_SECONDS, path.join(runDir, "song"), pinned);
record(song);
// The bound: what any correct job must at least do — join the clips without encoding and encode the song once.
const bound = boundOf(copy, song, "stream-copy bound (concat + song encode)");
results.push({ ...bound, verified: "" });

/** Where the profiled warm run spent its time, from its own logs (stage durations, render, output check). */
async function profileSection(): Promise<string> {
  const text = await readFile(profileLog, "utf8").catch(() => "");
  const logs = text
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  if (logs.length === 0) return "";
  const stage = (name: string) =>
    Number(logs.find((l) => l["message"] === "Stage " + name + " done")?.["duration_ms"] ?? Number.NaN) /
    1000;
  const verified = logs.find((l) => l["message"] === "Video assembled and verified") ?? {};
  const total = Number(logs.find((l) => l["message"] === "Job completed successfully")?.["total_seconds"]);
  const render = Number(verified["render_seconds"]);
  const check = Number(verified["check_seconds"]);
  const rows = [
    ["validation + task row", stage("validation")],
    ["workspace", stage("assembling")],
    ["cache lookups (hash, verify entries), song lookup", stage("fetching")],
    ["render: re-encoded windows, cut-ins, holds + join", render],
    [
      `output check (packets; ${String(verified["check_decoded_frames"])} of ${expectedFrames} frames decoded)`,
      check,
    ],
    ["upload", stage("uploading")],
    ["job total (in-process)", total],
  ] as const;
  return `
### Profile: warm, ${moveCount - 1} crossfades, one pinned vCPU (all levers)

From the run's own logs (song ${verified["song_cached"] === true ? "from the cache" : "encoded"}); the wall
time above also counts starting Node and the embedded database.

| part | s |
|---|---|
${rows.map(([name, seconds]) => `| ${name} | ${Number.isFinite(seconds) ? seconds.toFixed(2) : "–"} |`).join("\n")}
`;
}
const profile = await profileSection();

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
- **stream-copy bound**: what any correct job must at least do — the same clips concatenated without
  encoding (the I/O floor; its output ignores the timeline) **plus** encoding the song once (AAC 128k, the
  timeline's length); its two parts are the rows above it. *wall vs copy bound* divides by their sum.
- **levers** (warm rows): *partial decode* — the output's packets all checked, only encoded pieces and joins
  decoded (\`VERIFY_DECODE=partial\`, the default; *full* decodes everything); *song cache* — the song's encode
  reused from the clip cache; *hash memo* — local sources' sha256 reused while their inode, size, mtime and
  ctime are unchanged. Each "warm, …" row takes one away; "no lever" takes all three away.
- **warm-cache**: pre-warming a library (\`node dist/main.js warm-cache\`), one task pinned to one vCPU, one
  clip at a time: its rate is the throughput per Cloud Run task; N tasks warm N times as many.
- RSS is summed over the whole process tree (sampled every 100 ms); temp is the bytes in the run's temp
  directory; CPU s is user+system time of the whole tree.
${profile}`;
// Sections below the marker are kept (one-vCPU figures measured separately, see BENCHMARKS.md).
const outFile = path.resolve(root, values.out);
const previous = await readFile(outFile, "utf8").catch(() => "");
const kept = previous.indexOf(KEPT_MARKER);
await writeFile(outFile, kept === -1 ? report : `${report}\n${previous.slice(kept)}`);
process.stdout.write(`\n${report}`);
