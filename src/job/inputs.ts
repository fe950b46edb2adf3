import path from "node:path";
import type { Blueprint } from "../blueprint/types.js";
import type { Config } from "../config.js";
import { JobError } from "../errors.js";
import type { Logger } from "../log.js";
import { planRender, type RenderPlan } from "../media/plan.js";
import { probeMedia } from "../media/probe.js";
import { fetchMedia } from "../storage/fetch-media.js";
import type { Storage } from "../storage/storage.js";

export interface PreparedInputs {
  plan: RenderPlan;
  /** Storage key of each distinct clip → its local file. */
  clips: ReadonlyMap<string, string>;
  audio: string;
}

/**
 * Fetches the song and each distinct clip once, probes them, and plans the render. Shared by the
 * real run and `--dry-run`, so the dry run shows exactly what a run would do.
 */
export async function prepareInputs(
  blueprint: Blueprint,
  storage: Storage,
  workDir: string,
  options: {
    config: Config;
    logger: Logger;
    signal: AbortSignal;
    onFetchProgress?: (p: { files: number; totalFiles: number; bytes: number }) => void;
  },
): Promise<PreparedInputs> {
  const { config, logger, signal } = options;
  const clipKeys = [...new Set(blueprint.moves.map((move) => move.video_path))];
  const files = await fetchMedia(storage, [blueprint.audio_path, ...clipKeys], path.join(workDir, "media"), {
    concurrency: config.fetchConcurrency,
    signal,
    logger,
    onProgress: options.onFetchProgress,
  });
  const localPath = (key: string) => {
    const file = files.get(key);
    if (file === undefined) throw new JobError(`Media file not fetched: ${key}`, { code: "INTERNAL" });
    return file.path;
  };
  const probeOptions = { ffprobePath: config.ffprobePath, signal };
  const audioInfo = await probeMedia(localPath(blueprint.audio_path), blueprint.audio_path, probeOptions);
  const clipInfos = new Map(
    await Promise.all(
      clipKeys.map(async (key) => [key, await probeMedia(localPath(key), key, probeOptions)] as const),
    ),
  );
  const plan = planRender(blueprint, clipInfos, audioInfo);
  return {
    plan,
    clips: new Map(clipKeys.map((key) => [key, localPath(key)])),
    audio: localPath(blueprint.audio_path),
  };
}
