/**
 * Runs a render plan: the pieces (video segments and the song) with bounded concurrency, then the
 * final stream-copy join. Progress is frames done over the plan's frames, from each run's timemark.
 */
import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { forEachBounded } from "../concurrency.js";
import type { Logger } from "../log.js";
import type { RenderFiles, RenderStep, RenderSteps } from "./commands.js";
import { runFfmpeg } from "./ffmpeg.js";
import type { RenderPlan } from "./plan.js";
import { planSteps } from "./steps.js";

export interface RenderProgress {
  /** 0–100. */
  percent: number;
  /** Output seconds rendered per wall-clock second. */
  speed?: number;
  etaSeconds?: number;
}

export interface RenderOptions extends RenderFiles {
  ffmpegPath?: string;
  signal: AbortSignal;
  logger: Logger;
  onProgress?: (p: RenderProgress) => void;
  /** FFmpeg runs at once (default 2; the job passes the CPUs it is granted). Each run is single-threaded. */
  concurrency?: number;
}

/** Share of the progress bar kept for the final join. */
const FINAL_SHARE = 2;

export function renderVideo(plan: RenderPlan, options: RenderOptions): Promise<{ renderSeconds: number }> {
  return renderSteps(plan, planSteps(plan, options), options);
}

/**
 * Runs prepared steps (`steps.ts`: pieces encoded from sources, or a clip-cache assembly): the pieces and
 * the song with bounded concurrency, then the final join; removes the intermediate files.
 */
export async function renderSteps(
  plan: RenderPlan,
  steps: RenderSteps,
  options: Omit<RenderOptions, "inputs" | "audio">,
): Promise<{ renderSeconds: number }> {
  const { signal, logger } = options;
  const started = performance.now();
  await mkdir(options.workDir, { recursive: true });
  const totalFrames = Math.max(
    1,
    steps.pieces.reduce((sum, step) => sum + step.frames, 0),
  );
  const done = new Map<string, number>();
  let doneFrames = 0;
  let lastPercent = -1;

  const report = (force = false) => {
    const fraction = doneFrames / totalFrames;
    const percent = Math.min(100 - FINAL_SHARE, fraction * (100 - FINAL_SHARE));
    if (!force && percent - lastPercent < 0.5) return;
    lastPercent = percent;
    const elapsed = (performance.now() - started) / 1000;
    const seconds = doneFrames / plan.fps;
    const speed = elapsed > 0 && seconds > 0 ? seconds / elapsed : undefined;
    const etaSeconds = speed === undefined ? undefined : (totalFrames - doneFrames) / plan.fps / speed;
    options.onProgress?.({
      percent,
      ...(speed === undefined ? {} : { speed }),
      ...(etaSeconds === undefined ? {} : { etaSeconds }),
    });
  };
  const setDone = (step: RenderStep, frames: number) => {
    const clamped = Math.min(step.frames, Math.max(0, Math.floor(frames)));
    const previous = done.get(step.id) ?? 0;
    if (clamped <= previous) return;
    done.set(step.id, clamped);
    doneFrames += clamped - previous;
    report();
  };

  const run = (step: RenderStep, stop: AbortSignal) =>
    runFfmpeg(step.args, {
      ffmpegPath: options.ffmpegPath,
      timeoutMs: step.timeoutMs,
      signal: stop,
      logger,
      label: step.label,
      expectedSeconds: step.frames / plan.fps,
      onProgress: (p) => setDone(step, p.seconds * plan.fps),
    }).then(() => setDone(step, step.frames));

  logger.info(
    {
      width: plan.width,
      height: plan.height,
      fps: plan.fps,
      frames: plan.totalFrames,
      pieces: steps.pieces.length,
      concurrency: options.concurrency ?? 2,
    },
    "Rendering",
  );
  // The song is one long run (the whole timeline's audio): start it first so it overlaps the video pieces
  // instead of running alone on one core at the end. A failed piece stops the queue: pieces not yet
  // started are skipped, running ones are stopped and awaited.
  const ordered = [
    ...steps.pieces.filter((s) => s.kind === "audio"),
    ...steps.pieces.filter((s) => s.kind !== "audio"),
  ];
  await forEachBounded(ordered, Math.max(1, options.concurrency ?? 2), signal, (step, stop) =>
    run(step, stop),
  );

  await writeFile(steps.concatList.file, steps.concatList.content);
  await rm(options.output, { force: true });
  await runFfmpeg(steps.final.args, {
    ffmpegPath: options.ffmpegPath,
    timeoutMs: steps.final.timeoutMs,
    signal,
    logger,
    label: steps.final.label,
    expectedSeconds: plan.duration,
  });
  const renderSeconds = (performance.now() - started) / 1000;
  doneFrames = totalFrames;
  options.onProgress?.({ percent: 100, speed: plan.duration / renderSeconds, etaSeconds: 0 });
  // The temp dir lives in memory on Cloud Run: drop the pieces as soon as the output holds them.
  await Promise.all(
    [...steps.outputs, steps.concatList.file].map((file) => rm(file, { force: true }).catch(() => {})),
  );
  const size = await stat(options.output).then((s) => s.size);
  logger.info({ render_seconds: Math.round(renderSeconds * 100) / 100, file_size: size }, "Render finished");
  return { renderSeconds };
}
