/**
 * `npm run bench:production`: the job in production's shape — a Cloud Run task of 1 vCPU and 512 MiB
 * (temp files included: Cloud Run's /tmp is memory), GCS mode, a non-root user, the task row in a
 * PostgreSQL server of its own — on the reference workload. Writes its section of BENCHMARKS.md.
 *
 *   npm run bench:production                  # 29 moves × 8 s at 720p30 (generated, as npm run bench)
 *   npm run bench:production -- --moves 4     # a quick run
 *   npm run bench:production -- --media DIR   # real clips (DIR/clips/*.mp4) and a song (DIR/songs/*)
 *   npm run bench:production -- --cache-off   # also a warm run with CLIP_CACHE=off
 *
 * Each job run: `taskset -c 0`; in a new memory cgroup nested under this process's (limit 512 MiB); as
 * uid 1000; TMPDIR on a tmpfs mounted for the run, so temp pages are charged to that cgroup. This
 * process, the in-process GCS emulator and PostgreSQL run on core 1, outside the cgroup (as GCS and
 * Cloud SQL are outside the task). Without root there is no cgroup, tmpfs or uid switch: the report
 * says which parts of the shape were missing.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Storage } from "@google-cloud/storage";
import pg from "pg";
import { readTaskTableSql } from "../src/tasks/db.js";
import { createEmbeddedServer, freePort, isRoot } from "../src/tasks/embedded.js";
import { EMULATOR_PROJECT_ID, startGcsEmulator } from "../test/helpers/gcs-emulator.js";
import { probeVideo } from "../test/helpers/measure.js";
import { boundOf, measureCopyConcat, measureSongEncode, videoMd5 } from "./bench/bound.js";
import { type Measurement, measure } from "./bench/measure.js";
import { type CgroupReading, createRunCgroup } from "./bench/memory-cgroup.js";
import { shapedCommand, spliceSection } from "./bench/production.js";
import { benchBlueprint, generateWorkload, readWorkload, type Workload } from "./bench/workload.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    media: { type: "string" },
    moves: { type: "string", default: "29" },
    out: { type: "string", default: "BENCHMARKS.md" },
    "cache-off": { type: "boolean", default: false },
  },
});
const moveCount = Number(values.moves);
if (!Number.isInteger(moveCount) || moveCount < 2) throw new Error("--moves: an integer ≥ 2");
const MOVE_SECONDS = 8;
const FPS = 30;
const MiB = 1024 * 1024;
const LIMIT_BYTES = 512 * MiB;
const TARGET_MIB = 480;
const TARGET_WARM_SECONDS = 15;
/** The image's user (Dockerfile: `node`). */
const JOB_UID = 1000;
const BUCKET = "bench-production";
const USER_ID = 1;

const benchDir = path.join(root, ".cache", "bench");
const runDir = path.join(benchDir, "production");
const loadAtStart = os.loadavg();

// ---- The parts of production's shape this machine allows (each one said in the report) ----
const asRoot = isRoot();
const coreCount = os.cpus().length;
const shape: string[] = [];

process.stdout.write("building the CLI\n");
execFileSync("npm", ["run", "-s", "build"], { cwd: root, stdio: "inherit" });

const workload: Workload =
  values.media !== undefined
    ? await readWorkload(path.resolve(values.media))
    : await generateWorkload(path.join(benchDir, "media"), moveCount, moveCount * MOVE_SECONDS + 10);
const moveKeys = Array.from({ length: moveCount }, (_, i) => workload.clips[i % workload.clips.length]!);
const expectedFrames = moveCount * MOVE_SECONDS * FPS;

await rm(runDir, { recursive: true, force: true });
mkdirSync(runDir, { recursive: true });

// The job gets core 0; everything else (this script, the emulator in it, PostgreSQL it starts) core 1.
const pinned = coreCount >= 2;
if (pinned) {
  execFileSync("taskset", ["-a", "-p", "-c", "1", String(process.pid)], { stdio: "ignore" });
  shape.push(
    "**one vCPU**: each job under `taskset -c 0` (it plans for 1 CPU); this script, the GCS emulator (in its process) and PostgreSQL on core 1",
  );
} else {
  shape.push(
    `**one vCPU**: the machine has ${coreCount} core, shared by the job, the emulator and PostgreSQL`,
  );
}
shape.push(
  asRoot
    ? `**non-root**: the job runs as uid ${JOB_UID} (\`setpriv --reuid ${JOB_UID} --regid ${JOB_UID} --clear-groups\`)`
    : `**non-root**: the script runs as uid ${process.getuid?.()} already (not root: no uid switch, no cgroup, no tmpfs)`,
);

// ---- Cleanup of what a run mounts or creates, also on Ctrl-C ----
const mounts = new Set<string>();
const cgroups = new Set<{ remove(): Promise<void> }>();
function unmount(dir: string): void {
  try {
    execFileSync("umount", [dir], { stdio: "ignore" });
  } catch {
    try {
      // Still in use (interrupted mid-run): detached now, freed when the job has gone.
      execFileSync("umount", ["-l", dir], { stdio: "ignore" });
    } catch {
      // Not mounted.
    }
  }
  mounts.delete(dir);
}
async function cleanup(): Promise<void> {
  // The cgroups first: removing one stops what still runs in it, so its tmpfs is no longer busy.
  for (const cgroup of [...cgroups]) await cgroup.remove();
  cgroups.clear();
  for (const dir of [...mounts]) unmount(dir);
}
let stopServicesOnSignal: () => Promise<void> = async () => {};
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  // Never blocking: tsx, which runs this script, kills it if it does not answer a signal at once.
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    void cleanup()
      .then(() => stopServicesOnSignal())
      .finally(() => process.exit(130));
  });
}

// ---- Outside the task: GCS (the in-process emulator) with the workload's media, PostgreSQL (Cloud SQL's place) ----
const DB_NAME = "bachata_buddy";

async function startServices() {
  const stops: Array<() => Promise<unknown>> = [];
  // Once, however often called (the signal handler and the main flow may both get here).
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      for (const step of stops.reverse()) await step().catch(() => {});
    })());
  try {
    const emulator = await startGcsEmulator();
    stops.push(() => emulator.stop());
    process.env["STORAGE_EMULATOR_HOST"] = emulator.host;
    const storage = new Storage({ projectId: EMULATOR_PROJECT_ID });
    // The emulator creates a bucket on its first upload.
    const bucket = storage.bucket(BUCKET);
    for (const key of [...new Set(moveKeys), workload.song]) {
      await bucket.upload(path.join(workload.root, key), { destination: key });
    }

    const pgDir = await mkdtemp(path.join(os.tmpdir(), "bench-production-pg-"));
    stops.push(() => rm(pgDir, { recursive: true, force: true }));
    if (asRoot) chmodSync(pgDir, 0o755); // the server runs as `postgres`
    const db = {
      host: "127.0.0.1",
      port: await freePort(),
      user: "postgres",
      password: `bench-${Date.now().toString(36)}`,
    };
    const server = await createEmbeddedServer({
      dataDir: path.join(pgDir, "data"),
      port: db.port,
      user: db.user,
      password: db.password,
      initdbFlags: ["--no-sync"],
      postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    });
    await server.initialise();
    await server.start();
    stops.push(() => server.stop());
    const admin = new pg.Client(db);
    await admin.connect();
    await admin.query(`create database ${DB_NAME}`);
    await admin.end();
    const pool = new pg.Pool({ ...db, database: DB_NAME, max: 2 });
    stops.push(() => pool.end());
    await pool.query(await readTaskTableSql());
    return { emulator, bucket, db, pool, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
const { emulator, bucket, db, pool, stop: stopServices } = await startServices();
stopServicesOnSignal = stopServices;

// ---- One job run in production's shape ----
interface JobRun {
  measurement: Measurement;
  cgroup: CgroupReading | undefined;
  output: string;
  row: string;
  logFile: string;
  localOutput: string | undefined;
}

const runId = Date.now().toString(36);
const memoryShape = new Set<string>();
const tempShape = new Set<string>();
let cgroupUsed = false;

async function runJob(
  name: string,
  tag: string,
  transition: "crossfade" | "cut",
  extraEnv: Record<string, string> = {},
): Promise<JobRun> {
  if (interrupted) throw new Error("interrupted");
  const taskId = `bp-${runId}-${tag}`;
  const outputKey = `output/bench_production_${tag}.mp4`;
  const blueprint = benchBlueprint(workload, {
    taskId,
    moves: moveCount,
    moveSeconds: MOVE_SECONDS,
    transition,
    output: outputKey,
  });
  // As the API does before it starts an execution.
  await pool.query("insert into choreography_tasks (task_id, user_id, status) values ($1, $2, 'pending')", [
    taskId,
    USER_ID,
  ]);

  const tmp = path.join(runDir, `tmp-${tag}`);
  mkdirSync(tmp, { recursive: true });
  if (asRoot) {
    try {
      execFileSync(
        "mount",
        ["-t", "tmpfs", "-o", `size=512m,mode=0700,uid=${JOB_UID},gid=${JOB_UID}`, "tmpfs", tmp],
        { stdio: "pipe" },
      );
      mounts.add(tmp);
      tempShape.add("tmpfs (size 512 MiB) mounted for the run: temp pages are charged to the run's cgroup");
    } catch (error) {
      chownSync(tmp, JOB_UID, JOB_UID);
      tempShape.add(`a directory on disk (tmpfs mount failed: ${String(error).split("\n")[0]}): not charged`);
    }
  } else {
    tempShape.add("a directory on disk (not root: no tmpfs): temp files are not charged to memory");
  }

  const cgroup = createRunCgroup(`bench-production-${runId}-${tag}`, LIMIT_BYTES);
  if ("unavailable" in cgroup) {
    memoryShape.add(`no memory cgroup (${cgroup.unavailable}): the peak is the sampled RSS+temp only`);
  } else {
    cgroups.add(cgroup);
    cgroupUsed = true;
    memoryShape.add(
      `a new memory cgroup per run (${cgroup.description}, no swap), nested under this script's; the job joins it before it starts`,
    );
  }
  const argv = shapedCommand([process.execPath, path.join(root, "dist", "main.js")], {
    ...("unavailable" in cgroup ? {} : { procsFile: cgroup.procsFile }),
    ...(asRoot ? { uid: JOB_UID, gid: JOB_UID } : {}),
  });
  const logFile = path.join(runDir, `${tag}.jsonl`);
  let measurement: Measurement;
  let reading: CgroupReading | undefined;
  try {
    measurement = await measure({
      name,
      command: argv[0]!,
      args: argv.slice(1),
      env: {
        PATH: process.env["PATH"] ?? "/usr/bin:/bin",
        HOME: tmp,
        TMPDIR: tmp,
        // The deploy file's environment (deploy/cloud-run-job.yaml), with the emulator and a TCP database.
        BLUEPRINT_JSON: JSON.stringify(blueprint),
        TASK_ID: taskId,
        USER_ID: String(USER_ID),
        GCS_BUCKET_NAME: BUCKET,
        GCP_PROJECT_ID: EMULATOR_PROJECT_ID,
        STORAGE_EMULATOR_HOST: emulator.host,
        DB_HOST: db.host,
        DB_PORT: String(db.port),
        DB_NAME,
        DB_USER: db.user,
        DB_PASSWORD: db.password,
        CLOUD_RUN_JOB: "video-processor",
        CLOUD_RUN_EXECUTION: `video-processor-${runId}-${tag}`,
        CLOUD_RUN_TASK_INDEX: "0",
        CLOUD_RUN_TASK_COUNT: "1",
        CLOUD_RUN_TASK_ATTEMPT: "0",
        LOG_LEVEL: "INFO",
        LOG_FORMAT: "json",
        VIDEO_PRESET: "veryfast",
        ...extraEnv,
      },
      cwd: tmp,
      tempDir: tmp,
      stdoutFile: logFile,
      ...(pinned ? { cpus: 1 } : {}),
    });
  } finally {
    if (!("unavailable" in cgroup)) {
      reading = cgroup.read();
      await cgroup.remove();
      cgroups.delete(cgroup);
    }
    unmount(tmp);
  }

  const { rows } = await pool.query<{ status: string; error: string | null }>(
    "select status, error from choreography_tasks where task_id = $1",
    [taskId],
  );
  const row = rows[0] === undefined ? "no row" : rows[0].status + (rows[0].error ? `: ${rows[0].error}` : "");
  let output = "";
  let localOutput: string | undefined;
  const [exists] = await bucket.file(outputKey).exists();
  if (exists) {
    localOutput = path.join(runDir, `${tag}.mp4`);
    await bucket.file(outputKey).download({ destination: localOutput });
    const probed = probeVideo(localOutput);
    const av = Math.abs(probed.videoDuration - probed.audioDuration);
    output = `${probed.frames}/${expectedFrames} frames, A/V Δ ${(av * 1000).toFixed(1)} ms`;
  } else {
    output = "no output object";
  }
  if (measurement.exitCode !== 0) {
    output += `; exit ${measurement.exitCode}: ${measurement.stderrTail.split("\n").slice(-2).join(" ").trim()}`;
  }
  const result: JobRun = { measurement, cgroup: reading, output, row, logFile, localOutput };
  const peak = reading?.peakMiB === undefined ? "–" : reading.peakMiB.toFixed(0);
  process.stdout.write(
    `${name}: exit ${measurement.exitCode}, ${measurement.wallSeconds.toFixed(1)} s wall, ${measurement.cpuSeconds.toFixed(1)} CPU-s, cgroup peak ${peak} MiB, sampled ${measurement.peakRssPlusTempMiB.toFixed(0)} MiB; ${output}; row ${row}\n`,
  );
  return result;
}

// ---- The baseline, same run, same core: the stream-copy bound (concat without encoding + one song encode) ----
async function runBound(): Promise<Measurement> {
  const dir = path.join(runDir, "bound");
  const cpus = pinned ? 1 : undefined;
  const copy = await measureCopyConcat(workload, moveKeys, dir, cpus);
  const song = await measureSongEncode(workload, moveCount * MOVE_SECONDS, dir, cpus);
  return boundOf(
    copy,
    song,
    `stream-copy bound: concat without encoding (${copy.wallSeconds.toFixed(1)} s) + song encode (${song.wallSeconds.toFixed(1)} s)`,
  );
}

/** "Stage X done" lines of a run's log: where its time went. */
async function stageProfile(logFile: string): Promise<Array<[string, number]>> {
  const text = await readFile(logFile, "utf8").catch(() => "");
  const logs = text
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  const rows: Array<[string, number]> = [];
  // Logged before their stage ends: listed under it.
  let parts: Array<[string, number]> = [];
  for (const log of logs) {
    const match = /^Stage (.+) done$/.exec(String(log["message"] ?? ""));
    if (match !== null) {
      rows.push([match[1]!, Number(log["duration_ms"]) / 1000], ...parts);
      parts = [];
    }
    if (log["message"] === "Video assembled and verified") {
      parts.push(["… of which render", Number(log["render_seconds"])]);
      parts.push(["… of which output check", Number(log["check_seconds"])]);
    }
    if (log["message"] === "Job completed successfully") {
      rows.push(["job total (in-process)", Number(log["total_seconds"])]);
    }
  }
  return rows;
}

const label = (transition: "crossfade" | "cut") =>
  transition === "cut" ? "cuts only" : `${moveCount - 1} crossfade${moveCount === 2 ? "" : "s"}`;
const runs: Array<{ run: JobRun; warm: boolean }> = [];
let bound: Measurement | undefined;
try {
  bound = await runBound();
  process.stdout.write(`${bound.name}: ${bound.wallSeconds.toFixed(1)} s wall\n`);
  // The bucket is new: the cache prefix is empty for the first run.
  const cold = await runJob(`job, ${label("crossfade")}, cold (cache empty)`, "crossfade-cold", "crossfade");
  runs.push({ run: cold, warm: false });
  const warm = await runJob(`job, ${label("crossfade")}, warm`, "crossfade-warm", "crossfade");
  if (cold.localOutput !== undefined && warm.localOutput !== undefined) {
    warm.output +=
      videoMd5(cold.localOutput) === videoMd5(warm.localOutput)
        ? ", video identical to cold"
        : ", video differs from cold";
  }
  runs.push({ run: warm, warm: true });
  runs.push({ run: await runJob(`job, ${label("cut")}, warm`, "cut-warm", "cut"), warm: true });
  if (values["cache-off"]) {
    runs.push({
      run: await runJob(`job, ${label("crossfade")}, CLIP_CACHE=off`, "crossfade-off", "crossfade", {
        CLIP_CACHE: "off",
      }),
      warm: false,
    });
  }
} finally {
  await cleanup();
  await stopServices();
}
const loadAtEnd = os.loadavg();

// ---- The report ----
const fmt = (value: number | undefined, digits = 0) => (value === undefined ? "–" : value.toFixed(digits));
const loads = (l: number[]) => l.map((v) => v.toFixed(2)).join(" / ");
const vsBound = (wall: number) =>
  bound !== undefined && bound.wallSeconds > 0 ? `${(wall / bound.wallSeconds).toFixed(2)}×` : "–";
const rows = runs.map(({ run }) => {
  const m = run.measurement;
  return `| ${m.name} | ${m.wallSeconds.toFixed(1)} | ${m.cpuSeconds.toFixed(1)} | ${vsBound(m.wallSeconds)} | ${fmt(run.cgroup?.peakMiB)} | ${fmt(run.cgroup?.limitHits)} | ${fmt(run.cgroup?.oomKills)} | ${m.peakRssPlusTempMiB.toFixed(0)} (${m.peakTempMiB.toFixed(0)}) | ${m.exitCode} | ${run.output} | ${run.row} |`;
});
if (bound !== undefined) {
  rows.push(
    `| ${bound.name} | ${bound.wallSeconds.toFixed(1)} | ${bound.cpuSeconds.toFixed(1)} | 1.00× | – | – | – | ${bound.peakRssPlusTempMiB.toFixed(0)} | ${bound.exitCode} | local files, on disk | – |`,
  );
}

/** Judged on the higher of the two memory figures: each misses something the other counts. */
const memoryOf = (run: JobRun) => Math.max(run.cgroup?.peakMiB ?? 0, run.measurement.peakRssPlusTempMiB);
const judged = runs.filter(({ run }) => !run.measurement.name.includes("CLIP_CACHE=off"));
const worst = Math.max(...judged.map(({ run }) => memoryOf(run)));
const oomKilled = judged.some(({ run }) => (run.cgroup?.oomKills ?? 0) > 0);
const warmCrossfade = runs.find(({ run, warm }) => warm && run.measurement.name.includes("crossfades"))?.run;
const failures = runs.filter(({ run }) => run.measurement.exitCode !== 0 || !run.row.startsWith("completed"));
const profile = warmCrossfade === undefined ? [] : await stageProfile(warmCrossfade.logFile);
const ffmpegVersion =
  /^ffmpeg version \S+/.exec(execFileSync("ffmpeg", ["-version"], { encoding: "utf8" }))?.[0] ?? "ffmpeg";

const section = `**Production shape** (\`npm run bench:production\`): the job as a Cloud Run task runs it — GCS mode
against the GCS emulator, the task row in a PostgreSQL server of its own — on ${moveCount} moves × ${MOVE_SECONDS} s =
${moveCount * MOVE_SECONDS} s at ${FPS} fps (${workload.clips.length} clips${values.media !== undefined ? ", real media" : ", 720p30 H.264 High, keyframe every 250 frames"}), one song; every row ran in the
same invocation.

- ${shape.join("\n- ")}
- **512 MiB including /tmp**: ${[...memoryShape].join("; ") || "–"}; TMPDIR: ${[...tempShape].join("; ") || "–"}
- **outside the task**: the GCS emulator (in the script's process) and PostgreSQL (started by the script, its
  own memory not counted) ran outside the job's core and cgroup, as GCS and Cloud SQL do
- the deploy file's environment: \`BLUEPRINT_JSON\`, \`TASK_ID\`, \`USER_ID\`, \`GCS_BUCKET_NAME\`, \`DB_*\`
  (TCP instead of the Cloud SQL socket), \`CLOUD_RUN_*\`, \`LOG_LEVEL=INFO\`, \`VIDEO_PRESET=veryfast\`; the task
  row inserted \`pending\` beforehand, as the API does. *Cold*: the bucket's cache prefix empty; *warm*: the cache
  the cold run filled (clips and the song's encode); the cuts-only run reuses the same entries.

Machine: ${coreCount} × ${os.cpus()[0]?.model ?? "unknown CPU"}, Linux ${os.release()}, ${ffmpegVersion}; shared with other work:
load average (1 / 5 / 15 min) ${loads(loadAtStart)} at the start, ${loads(loadAtEnd)} at the end.

| run (one vCPU, GCS mode) | wall s | CPU s | wall vs bound | cgroup peak MiB | limit hits | OOM kills | sampled RSS+temp MiB (temp) | exit | output | task row |
|---|---|---|---|---|---|---|---|---|---|---|
${rows.join("\n")}

- **cgroup peak**: the run's cgroup's own high-water mark (${cgroupUsed ? "`memory.max_usage_in_bytes` in v1, `memory.peak` in v2" : "none here"}): RSS, page cache and tmpfs
  pages the job's processes brought in — what Cloud Run's limit counts. File pages the host had already cached
  (the Node binary, FFmpeg's libraries) stay charged to whoever read them first and are not in it. *limit
  hits*: times usage reached the limit (the kernel then reclaims cache; an OOM kill follows only when it cannot).
- **sampled RSS+temp**: the process tree's RSS plus the bytes in TMPDIR every 100 ms (as \`npm run bench\`);
  it can miss short peaks, and counts shared pages (libraries, the Node binary) once per process.
- **CPU s**: user+system time of the job's whole process tree. **bound**: the same clips concatenated without
  encoding plus the song encoded once, pinned to the same core (local files); *wall vs bound* divides by it.

Issue 15's targets, from these rows (not a test): peak memory ≤ ${TARGET_MIB} MiB cold and warm in GCS mode —
${Number.isFinite(worst) ? `highest ${worst.toFixed(0)} MiB (the higher of the two memory columns): **${worst <= TARGET_MIB && !oomKilled ? "met" : "not met"}**${oomKilled ? " (an OOM kill)" : ""}` : "not measured"}; warm on one vCPU ≤ ${TARGET_WARM_SECONDS} s —
${warmCrossfade === undefined ? "not measured" : `${warmCrossfade.measurement.wallSeconds.toFixed(1)} s wall (${warmCrossfade.measurement.cpuSeconds.toFixed(1)} CPU-s): **${warmCrossfade.measurement.wallSeconds <= TARGET_WARM_SECONDS ? "met" : "not met"}**`}${moveCount === 29 ? "" : ` (on ${moveCount} moves, not the reference 29)`}.${failures.length > 0 ? ` **${failures.length} run(s) failed** (see *exit* and *task row*).` : ""}
${
  profile.length === 0
    ? ""
    : `
**Where the warm crossfade run's time went** (production shape; its own logs, \`Stage … done\`; the wall time also counts starting Node):

| stage | s |
|---|---|
${profile.map(([stage, seconds]) => `| ${stage} | ${Number.isFinite(seconds) ? seconds.toFixed(2) : "–"} |`).join("\n")}
`
}`;

const outFile = path.resolve(root, values.out);
const previous = existsSync(outFile) ? await readFile(outFile, "utf8") : "";
await writeFile(outFile, spliceSection(previous, section));
process.stdout.write(`\n${section}\n`);
