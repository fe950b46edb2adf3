/**
 * The render as data (pure): the timeline's pieces, each made one way — a span stream-copied out of
 * a cache entry, or a piece (move body, cut-in, hold, transition window) encoded from its inputs —
 * plus the song and the join, turned into the FFmpeg runs `render.ts` executes and `--dry-run`
 * prints. Without cache entries every piece is encoded from its source (`encodedItems`); with them
 * `planAssembly` (assembly.ts) chooses copies where it can. One step builder serves both.
 */
import type { OutputFormat } from "../blueprint/types.js";
import { JobError } from "../errors.js";
import { type AssemblyItem, cacheEncoderArgs, type EntryFrames } from "./assembly.js";
import {
  audioStep,
  finalStep,
  joinPath,
  MUXERS,
  type PieceEncoding,
  pieceArgs,
  pieceLabel,
  pieceName,
  type RenderFiles,
  type RenderStep,
  type RenderSteps,
  slowness,
  watchdogMs,
} from "./commands.js";
import { rateString, type SourceFit, secs, videoEncoderArgs } from "./filters.js";
import type { RenderPlan, SourcePlan } from "./plan.js";

/** Every piece of the timeline encoded from its source, in timeline order (no cache). */
export function encodedItems(plan: RenderPlan): AssemblyItem[] {
  return plan.pieces.map((piece) => ({
    kind: "encode",
    role: piece.kind,
    startFrame: piece.startFrame,
    frames: piece.frames,
    piece,
  }));
}

/** The plan as seen from the entries: every source is already at the output's size and rate. */
export function entryPlan(plan: RenderPlan, entries: ReadonlyMap<string, EntryFrames>): RenderPlan {
  const fit: SourceFit = { width: plan.width, height: plan.height, x: 0, y: 0 };
  const sources: Record<string, SourcePlan> = {};
  for (const [key, entry] of entries) {
    sources[key] = {
      demuxer: "mov",
      duration: entry.frames / plan.fps,
      fit,
      fps: plan.fps,
      variableFrameRate: false,
    };
  }
  return { ...plan, sources };
}

/** Exact integer microseconds of frame `frame` (rounded up or down) at rate `rate` ("num/den"). */
function frameMicros(frame: number, rate: string, round: "up" | "down"): number {
  const [num, den] = rate.split("/").map(Number) as [number, number];
  const exact = (frame * den * 1_000_000) / num;
  return round === "up" ? Math.ceil(exact) : Math.floor(exact);
}

/** Quotes a path for an ffconcat `file` line. */
export function concatQuote(file: string): string {
  return `'${file.replaceAll("'", "'\\''")}'`;
}

export interface AssemblyFiles {
  /** Storage key → the entry's local file and frame count. */
  entries: ReadonlyMap<string, EntryFrames & { file: string }>;
  audio: string;
  workDir: string;
  output: string;
}

/** What the pieces are encoded from: the sources themselves, or their cache entries. */
type ItemFiles = RenderFiles | AssemblyFiles;

/**
 * The FFmpeg runs of a list of items: encoded pieces and the song, then one stream-copy join.
 * From sources, pieces are encoded with the plan's own codec and muxer. From cache entries, with
 * the cache's encoder options (so they join the entries by stream copy), and the concat list points
 * straight into the entries for the copied ranges (`inpoint` at the keyframe, rounded up to the
 * microsecond so the demuxer's seek lands on it; `outpoint` rounded down, so the first frame past
 * the range is dropped and none before it).
 */
export function planItemSteps(
  plan: RenderPlan,
  items: readonly AssemblyItem[],
  files: ItemFiles,
): RenderSteps {
  const fromEntries = "entries" in files;
  const entryFile = (key: string): string => {
    const entry = fromEntries ? files.entries.get(key) : undefined;
    if (entry === undefined) throw new JobError(`No cache entry file for ${key}`, { code: "INTERNAL" });
    return entry.file;
  };
  const sourcePlan = fromEntries ? entryPlan(plan, files.entries) : plan;
  const inputs = fromEntries
    ? new Map([...files.entries].map(([key, entry]) => [key, entry.file]))
    : files.inputs;
  const format: OutputFormat = fromEntries ? "mp4" : plan.format;
  const encoding: PieceEncoding = fromEntries
    ? { encoderArgs: cacheEncoderArgs(plan.video), muxer: "mp4" }
    : { encoderArgs: videoEncoderArgs(plan.video, plan.format), muxer: MUXERS[plan.format] };
  const pixels = plan.width * plan.height;
  const factor = slowness(plan.video);
  const rate = rateString(plan.fps);
  const pieces: RenderStep[] = [];
  const lines: string[] = [];
  const outputs: string[] = [];
  items.forEach((item, i) => {
    if (item.kind === "copy") {
      lines.push(
        `file ${concatQuote(entryFile(item.key))}`,
        `inpoint ${secs(frameMicros(item.fromFrame, rate, "up") / 1e6)}`,
        `outpoint ${secs(frameMicros(item.toFrame, rate, "down") / 1e6)}`,
      );
      return;
    }
    const name = pieceName(i, format);
    const output = joinPath(files.workDir, name);
    const { args, seek } = pieceArgs(item.piece, sourcePlan, { inputs }, output, encoding);
    const role = item.role === "cut-in" || item.role === "hold" ? ` (${item.role})` : "";
    pieces.push({
      id: `piece-${i}`,
      kind: "piece",
      label: `${pieceLabel(item.piece, plan)}${role}`,
      args,
      frames: item.frames,
      timeoutMs: watchdogMs(item.frames / plan.fps + seek * 0.25, pixels, factor),
    });
    lines.push(`file '${name}'`);
    outputs.push(output);
  });
  const audio = audioStep(plan, files);
  pieces.push(audio.step);
  outputs.push(audio.file);
  const concatFile = joinPath(files.workDir, "pieces.txt");
  return {
    pieces,
    concatList: { file: concatFile, content: `ffconcat version 1.0\n${lines.join("\n")}\n` },
    // Entries live outside the work dir: the concat demuxer's safe mode would refuse them.
    final: finalStep(plan, files, concatFile, audio.file, fromEntries),
    outputs,
  };
}

/** Every FFmpeg run of the render with every piece encoded from its source. */
export function planSteps(plan: RenderPlan, files: RenderFiles): RenderSteps {
  return planItemSteps(plan, encodedItems(plan), files);
}

/** The runs of a clip-cache assembly (`planAssembly`'s items over the entries). */
export function planAssemblySteps(
  plan: RenderPlan,
  items: readonly AssemblyItem[],
  files: AssemblyFiles,
): RenderSteps {
  return planItemSteps(plan, items, files);
}

/** The exact FFmpeg argument lists (without the binary) the render runs, in a valid order. */
export function planCommands(plan: RenderPlan, files: RenderFiles): string[][] {
  const steps = planSteps(plan, files);
  return [...steps.pieces.map((step) => step.args), steps.final.args];
}
