/**
 * Measures the render engine alone on SPEC §7's reference workload (29 moves × 8 s, 720p30 H.264
 * clips with a keyframe every ~8.3 s, 28 crossfades, veryfast): wall time, CPU seconds of the process
 * tree, peak RSS summed over the tree, peak temp bytes. Numbers go to docs/decisions/render-architecture.md.
 *
 *   npx tsx test/media/bench/reference.ts [--moves 29] [--concurrency 2] [--transition crossfade|cut]
 *
 * Media: the project benchmark's generated workload (scripts/bench/workload.ts, cached in .cache/bench).
 * The clips and song are copied into the measured temp dir, as the job downloads them there.
 */
import { cp, mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { measure } from "../../../scripts/bench/measure.js";
import { generateWorkload } from "../../../scripts/bench/workload.js";
import { silentLogger } from "../../../src/log.js";
import type { MediaInfo } from "../../../src/media/media-info.js";
import { planRender } from "../../../src/media/plan.js";
import { probeMedia } from "../../../src/media/probe.js";
import { renderVideo } from "../../../src/media/render.js";
import { verifyOutput } from "../../../src/media/verify.js";
import { makeBlueprint } from "../../helpers/blueprints.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const { values } = parseArgs({
  options: {
    child: { type: "string" },
    moves: { type: "string", default: "29" },
    concurrency: { type: "string", default: "2" },
    transition: { type: "string", default: "crossfade" },
    preset: { type: "string", default: "veryfast" },
  },
});
const moves = Number(values.moves);

async function child(dir: string): Promise<void> {
  const clips = Array.from({ length: moves }, (_, i) => `clips/clip_${String(i + 1).padStart(2, "0")}.mp4`);
  const blueprint = makeBlueprint(
    clips.map((key, i) => ({
      video_path: key,
      duration: 8,
      transition_type: i === 0 || values.transition === "cut" ? "cut" : "crossfade",
    })),
    { preset: values.preset as "veryfast", audio_bitrate: "128k" },
  );
  blueprint.audio_path = "songs/song.mp3";
  const infos = new Map<string, MediaInfo>();
  for (const key of clips) infos.set(key, await probeMedia(path.join(dir, key), key));
  const song = path.join(dir, blueprint.audio_path);
  const plan = planRender(blueprint, infos, await probeMedia(song, blueprint.audio_path));
  const output = path.join(dir, "output.mp4");
  const { renderSeconds } = await renderVideo(plan, {
    inputs: new Map(clips.map((key) => [key, path.join(dir, key)])),
    audio: song,
    workDir: path.join(dir, "render"),
    output,
    signal: new AbortController().signal,
    logger: silentLogger(),
    concurrency: Number(values.concurrency),
  });
  const verifyStarted = performance.now();
  const verified = await verifyOutput(output, plan, { decodeCheck: false });
  // stderr: the measuring parent keeps its tail (stdout is discarded).
  process.stderr.write(
    `${JSON.stringify({ renderSeconds, verifySeconds: (performance.now() - verifyStarted) / 1000, ...verified, pieces: plan.pieces.length })}\n`,
  );
}

if (values.child !== undefined) {
  await child(values.child);
} else {
  const workload = await generateWorkload(path.join(root, ".cache", "bench", "media"), 29, 29 * 8 + 10);
  const dir = await mkdtemp(path.join(os.tmpdir(), "render-bench-"));
  await mkdir(path.join(dir, "clips"));
  await cp(path.join(workload.root, "clips"), path.join(dir, "clips"), { recursive: true });
  await cp(path.join(workload.root, "songs"), path.join(dir, "songs"), { recursive: true });
  try {
    const result = await measure({
      name: "render",
      command: process.execPath,
      args: [
        "--import",
        "tsx",
        fileURLToPath(import.meta.url),
        "--child",
        dir,
        "--moves",
        String(moves),
        "--concurrency",
        String(values.concurrency),
        "--transition",
        String(values.transition),
        "--preset",
        String(values.preset),
      ],
      cwd: root,
      tempDir: dir,
    });
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
