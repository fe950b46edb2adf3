/**
 * `npm run demo`: makes a small demo library under data/demo/ (if missing), runs the job on
 * examples/demo.blueprint.json exactly as a user would (the CLI, env vars, local storage, embedded
 * PostgreSQL), then prints where the video is and the task row's final state.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type pg from "pg";
import { loadConfig } from "../src/config.js";
import { silentLogger } from "../src/log.js";
import { runFfmpeg } from "../src/media/ffmpeg.js";
import { openDatabase } from "../src/tasks/db.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dataDir = path.join(root, "data");
const blueprintFile = path.join(root, "examples", "demo.blueprint.json");

/** Each clip: a lavfi source with motion and its own look; one portrait to show padding. */
const CLIPS: Record<string, string> = {
  "sunrise.mp4": "gradients=s=1280x720:r=30:c0=0xff6a00:c1=0x5b0080:speed=0.02:d=6",
  "fractal.mp4": "mandelbrot=s=1280x720:r=30",
  "portrait.mp4": "testsrc2=s=720x1280:r=30:d=6",
  "grid.mp4": "sierpinski=s=1280x720:r=30:type=carpet,hue=h=200",
  "life.mp4":
    "gradients=s=1280x720:r=30:type=spiral:nb_colors=4:c0=0x00c8a0:c1=0x2040ff:c2=0xff3080:c3=0xffd040:speed=0.03",
};

async function makeLibrary(): Promise<void> {
  const clipsDir = path.join(dataDir, "demo", "clips");
  const songsDir = path.join(dataDir, "demo", "songs");
  await mkdir(clipsDir, { recursive: true });
  await mkdir(songsDir, { recursive: true });
  for (const [name, source] of Object.entries(CLIPS)) {
    const file = path.join(clipsDir, name);
    if (existsSync(file)) continue;
    process.stdout.write(`generating ${path.relative(root, file)}\n`);
    await runFfmpeg(
      [
        "-y",
        "-f",
        "lavfi",
        "-i",
        source,
        "-t",
        "6",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        file,
      ],
      { timeoutMs: 120_000 },
    );
  }
  const song = path.join(songsDir, "demo_song.m4a");
  if (!existsSync(song)) {
    process.stdout.write(`generating ${path.relative(root, song)}\n`);
    // A simple 120 BPM pattern: a bass note pulsing on the beat under a slow two-note pad.
    const expr =
      "0.35*sin(2*PI*55*t)*exp(-6*(t-0.5*floor(t/0.5)))+0.12*sin(2*PI*220*t)*(0.6+0.4*sin(2*PI*0.25*t))+0.08*sin(2*PI*330*t)";
    await runFfmpeg(
      [
        "-y",
        "-f",
        "lavfi",
        "-i",
        `aevalsrc=${expr}|${expr}:s=48000:d=24`,
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        song,
      ],
      { timeoutMs: 120_000 },
    );
  }
}

function runJob(): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", path.join(root, "src", "main.ts"), "--blueprint", blueprintFile],
      {
        cwd: root,
        stdio: "inherit",
        env: { ...process.env, LOCAL_STORAGE_ROOT: dataDir, USER_ID: process.env["USER_ID"] ?? "1" },
      },
    );
    child.on("error", reject);
    child.on("exit", (code) => resolve(code ?? 1));
  });
}

const blueprint = JSON.parse(await readFile(blueprintFile, "utf8")) as {
  task_id: string;
  output_config: { output_path: string };
};
const config = loadConfig({ ...process.env, LOCAL_STORAGE_ROOT: dataDir });

/** The demo renders every time: its task row is reset first (a real job skips a completed task). */
async function withDatabase<T>(use: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const database = await openDatabase(config, silentLogger());
  try {
    return await use(database.pool);
  } finally {
    await database.close();
  }
}

await makeLibrary();
await withDatabase((pool) =>
  pool.query("delete from choreography_tasks where task_id = $1::varchar", [blueprint.task_id]),
);
const exitCode = await runJob();
const { rows } = await withDatabase((pool) =>
  pool.query(
    "select task_id, status, progress, stage, message, result, error from choreography_tasks where task_id = $1::varchar",
    [blueprint.task_id],
  ),
);
process.stdout.write(`\njob exit code: ${exitCode}\n`);
process.stdout.write(`video: ${path.join(dataDir, blueprint.output_config.output_path)}\n`);
process.stdout.write(`task row: ${JSON.stringify(rows[0], null, 2)}\n`);
process.exit(exitCode);
