/** Renders a blueprint with the real renderer for the media tests (blueprints: test/helpers/blueprints.ts). */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Blueprint } from "../../src/blueprint/types.js";
import { silentLogger } from "../../src/log.js";
import type { MediaInfo } from "../../src/media/media-info.js";
import { planRender, type RenderPlan } from "../../src/media/plan.js";
import { probeMedia } from "../../src/media/probe.js";
import { renderVideo } from "../../src/media/render.js";
import { type VerifiedOutput, verifyOutput } from "../../src/media/verify.js";

export interface Rendered {
  plan: RenderPlan;
  file: string;
  verified: VerifiedOutput;
  dir: string;
}

/** Probes, plans, renders and verifies a blueprint whose keys map to local files. */
export async function render(
  blueprint: Blueprint,
  files: Record<string, string>,
  song: string,
  options: { concurrency?: number; onProgress?: (p: { percent: number }) => void; signal?: AbortSignal } = {},
): Promise<Rendered> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "media-test-"));
  const signal = options.signal ?? new AbortController().signal;
  try {
    return await renderIn(dir, blueprint, files, song, signal, options);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function renderIn(
  dir: string,
  blueprint: Blueprint,
  files: Record<string, string>,
  song: string,
  signal: AbortSignal,
  options: { concurrency?: number; onProgress?: (p: { percent: number }) => void },
): Promise<Rendered> {
  const infos = new Map<string, MediaInfo>();
  const used = new Set(blueprint.moves.map((m) => m.video_path));
  for (const [key, file] of Object.entries(files))
    if (used.has(key)) infos.set(key, await probeMedia(file, key, { signal }));
  const audio = await probeMedia(song, blueprint.audio_path, { signal });
  const plan = planRender(blueprint, infos, audio);
  const file = path.join(dir, `out.${blueprint.output_config.output_format}`);
  await renderVideo(plan, {
    inputs: new Map(Object.entries(files)),
    audio: song,
    workDir: path.join(dir, "render"),
    output: file,
    signal,
    logger: silentLogger(),
    concurrency: options.concurrency ?? 2,
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
  });
  const verified = await verifyOutput(file, plan, {});
  return { plan, file, verified, dir };
}

export function cleanup(rendered: { dir: string } | undefined): void {
  if (rendered !== undefined) rmSync(rendered.dir, { recursive: true, force: true });
}
