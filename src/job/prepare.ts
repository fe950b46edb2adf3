/**
 * The one planner a run and `--dry-run` share: probes the inputs, makes the timeline and chooses how
 * each piece is made. With the clip cache (`clipCacheApplies`: CLIP_CACHE on, a codec the cache
 * serves) move bodies are stream-copied spans of normalised entries and only transition windows,
 * cut-ins and holds are encoded (`media/assembly.ts`); otherwise every piece is encoded from its
 * source (`media/commands.ts`). Either way the result is one list of FFmpeg runs that
 * `media/render.ts` executes, and that `--dry-run` prints.
 */
import path from "node:path";
import type { Blueprint } from "../blueprint/types.js";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import { planAssembly } from "../media/assembly.js";
import type { RenderSteps } from "../media/commands.js";
import { assemblyOutputPieces, type OutputPiece, segmentOutputPieces } from "../media/output-check.js";
import type { RenderPlan } from "../media/plan.js";
import { piecesPerRun, planAssemblySteps, planSteps } from "../media/steps.js";
import type { Storage } from "../storage/storage.js";
import { clipCacheApplies, prepareCachedInputs } from "./clip-cache.js";
import { prepareInputs } from "./inputs.js";
import { type SongCacheUse, useSongCache } from "./song-cache.js";
import { progressWithin } from "./stages.js";

export interface PreparedRender {
  plan: RenderPlan;
  /** Whether the pieces come from the clip cache. */
  clipCache: boolean;
  /**
   * Read-only preparation (`--dry-run`): FFmpeg arguments of the cache entries a run would build
   * before rendering. Empty for a real run, which has built them by now.
   */
  builds: string[][];
  steps: RenderSteps;
  /** What the render encodes and what it stream-copies, in timeline order (for the output check). */
  pieces: OutputPiece[];
  /** The encoded-song cache (clip cache only): on a hit the song's encode is not among the steps. */
  songCache?: SongCacheUse;
  /** Where the render writes the final file. */
  output: string;
  /** Where the render writes its pieces. */
  renderDir: string;
}

export interface PrepareProgress {
  /** 0–100 on the task row's scale (within the fetching stage). */
  progress: number;
  message: string;
  /** 0–1 of this preparation, for a progress bar. */
  fraction: number;
  detail: string;
}

export interface PrepareOptions {
  config: Config;
  logger: Logger;
  signal: AbortSignal;
  /** FFmpeg runs at once (cache entries are built one per granted CPU). */
  concurrency: number;
  /** `--dry-run`: build and publish nothing. */
  readOnly?: boolean;
  onProgress?: (p: PrepareProgress) => void;
}

export async function prepareRender(
  blueprint: Blueprint,
  storage: Storage,
  workDir: string,
  options: PrepareOptions,
): Promise<PreparedRender> {
  const { config, logger, signal, onProgress } = options;
  const output = path.join(workDir, `output.${blueprint.output_config.output_format}`);
  const renderDir = path.join(workDir, "render");
  if (clipCacheApplies(config, blueprint)) {
    // Clip cache (docs/decisions/clip-cache.md): bodies stream-copied from normalised entries.
    const cached = await prepareCachedInputs(blueprint, storage, workDir, {
      config,
      logger,
      signal,
      buildConcurrency: options.concurrency,
      ...(options.readOnly === true ? { readOnly: true } : {}),
      onProgress: (p) => {
        onProgress?.({
          fraction: p.done / p.total,
          detail: `${p.phase} ${p.done}/${p.total}`,
          progress: progressWithin(
            "fetching",
            p.phase === "lookup" ? (0.2 * p.done) / p.total : 0.2 + (0.8 * p.done) / p.total,
          ),
          message:
            p.phase === "lookup"
              ? `Checked ${p.done} of ${p.total} cached clips`
              : `Normalised ${p.done} of ${p.total} clips for the cache`,
        });
      },
    });
    const plan = cached.plan;
    const items = planAssembly(plan, cached.entries);
    const encoded = items.filter((item) => item.kind === "encode").length;
    const steps = planAssemblySteps(
      plan,
      items,
      { entries: cached.entries, audio: cached.audio, workDir: renderDir, output },
      { piecesPerRun: piecesPerRun(encoded, options.concurrency) },
    );
    const pieces = assemblyOutputPieces(items, cached.entries);
    // The encoded song, cached like clips (docs/decisions/clip-cache.md): a hit drops the song's encode.
    const songCache = await useSongCache(plan, steps, storage, {
      prefix: config.clipCachePrefix,
      workDir,
      logger,
      signal,
      ffprobePath: config.ffprobePath,
      ffmpegPath: config.ffmpegPath,
    });
    return {
      plan,
      clipCache: true,
      builds: cached.builds,
      steps: songCache.steps,
      pieces,
      songCache,
      output,
      renderDir,
    };
  }
  const prepared = await prepareInputs(blueprint, storage, workDir, {
    config,
    logger,
    signal,
    onFetchProgress: (p) => {
      onProgress?.({
        fraction: p.files / p.totalFiles,
        detail: `${p.files}/${p.totalFiles} files`,
        progress: progressWithin("fetching", (0.8 * p.files) / p.totalFiles),
        message: `Fetched ${p.files} of ${p.totalFiles} files`,
      });
    },
  });
  const plan = prepared.plan;
  const steps = planSteps(plan, {
    inputs: prepared.clips,
    audio: prepared.audio,
    workDir: renderDir,
    output,
  });
  return { plan, clipCache: false, builds: [], steps, pieces: segmentOutputPieces(plan), output, renderDir };
}

/** Every FFmpeg run of a prepared render, in a valid order (without the binary). */
export function preparedCommands(prepared: PreparedRender): string[][] {
  return [...prepared.builds, ...prepared.steps.pieces.map((step) => step.args), prepared.steps.final.args];
}
