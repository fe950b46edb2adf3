/**
 * The render as data (pure): the timeline's pieces, each made one way — a span stream-copied out of
 * a cache entry, or a piece (move body, cut-in, hold, transition window) encoded from its inputs —
 * plus the song and the join, turned into the FFmpeg runs `render.ts` executes and `--dry-run`
 * prints. Without cache entries every piece is encoded from its source (`encodedItems`); with them
 * `planAssembly` (assembly.ts) chooses copies where it can. One step builder serves both.
 */
import type { OutputFormat } from "../blueprint/types.js";
import { JobError } from "../errors.js";
import { type AssemblyItem, cacheEncoderArgs, type EncodeItem, type EntryFrames } from "./assembly.js";
import {
  audioStep,
  batchArgs,
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

export interface StepOptions {
  /**
   * Re-encoded pieces of a cache assembly per FFmpeg run (default 1: one run each); see
   * `piecesPerRun`. Pieces encoded from sources always run one per process.
   */
  piecesPerRun?: number;
}

/**
 * At most this many re-encoded pieces per FFmpeg run. 28 crossfade windows of 15 frames at 720p on
 * one pinned core: one per run 13.5 s, four per run 10.9 s, seven 11.2 s, all 28 in one 13.1 s;
 * peak RSS of a run 130 MB with one piece, 187 MB with four, 246 MB with seven
 * (docs/decisions/clip-cache.md, "Batched pieces").
 */
export const MAX_PIECES_PER_RUN = 4;

/**
 * At most this many re-encoded pieces in all the runs at once: memory grows with the pieces a run
 * holds (FFmpeg opens every input of a run before it starts). On 2 cores, two runs of four peaked at
 * 478–482 MiB RSS + temp for the reference warm job, over the 480 MiB budget.
 */
export const MAX_PIECES_IN_FLIGHT = 4;

/**
 * How many re-encoded pieces each FFmpeg run takes: enough runs to keep every granted CPU busy, each
 * with at most `MAX_PIECES_PER_RUN` pieces and, with one run per CPU at once, at most
 * `MAX_PIECES_IN_FLIGHT` pieces open in all.
 */
export function piecesPerRun(encodedPieces: number, concurrency: number): number {
  const cpus = Math.max(1, concurrency);
  const cap = Math.min(MAX_PIECES_PER_RUN, Math.floor(MAX_PIECES_IN_FLIGHT / cpus));
  return Math.max(1, Math.min(cap, Math.ceil(encodedPieces / cpus)));
}

/** The encoded items' indices, `size` per batch, in timeline order. */
function batchesOf(items: readonly AssemblyItem[], size: number): number[][] {
  const encoded = items.flatMap((item, i) => (item.kind === "encode" ? [i] : []));
  const batches: number[][] = [];
  for (let at = 0; at < encoded.length; at += Math.max(1, size)) {
    batches.push(encoded.slice(at, at + Math.max(1, size)));
  }
  return batches;
}

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
      onGrid: true,
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
  options: StepOptions = {},
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
  const label = (item: EncodeItem) =>
    `${pieceLabel(item.piece, plan)}${item.role === "cut-in" || item.role === "hold" ? ` (${item.role})` : ""}`;
  const budget = (frames: number, seek: number) =>
    watchdogMs(frames / plan.fps + seek * 0.25, pixels, factor);
  // Entries only: pieces from sources are long (whole bodies) and sources can be large.
  const batchOf = new Map<number, { b: number; members: number[] }>();
  if (fromEntries) {
    batchesOf(items, options.piecesPerRun ?? 1).forEach((members, b) => {
      if (members.length > 1) for (const i of members) batchOf.set(i, { b, members });
    });
  }
  const fileOfItem = new Map<number, string>();
  // A batch's run, added where its first piece is in the timeline; its pieces are files of its
  // segment muxer.
  const batchStep = (b: number, members: readonly number[]): RenderStep => {
    const encoded = members.map((i) => items[i] as EncodeItem);
    const base = `batch-${String(b).padStart(4, "0")}`;
    const { args, seek } = batchArgs(
      encoded.map((item) => item.piece),
      sourcePlan,
      { inputs },
      joinPath(files.workDir, `${base}-%03d.mp4`),
      encoding.encoderArgs,
    );
    members.forEach((i, k) => {
      const name = `${base}-${String(k).padStart(3, "0")}.mp4`;
      fileOfItem.set(i, name);
      outputs.push(joinPath(files.workDir, name));
    });
    return {
      id: base,
      kind: "piece",
      label: encoded.map(label).join("; "),
      args,
      frames: encoded.reduce((sum, item) => sum + item.frames, 0),
      timeoutMs: encoded.reduce((sum, item) => sum + budget(item.frames, seek), 0),
    };
  };
  items.forEach((item, i) => {
    if (item.kind === "copy") {
      lines.push(
        `file ${concatQuote(entryFile(item.key))}`,
        `inpoint ${secs(frameMicros(item.fromFrame, rate, "up") / 1e6)}`,
        `outpoint ${secs(frameMicros(item.toFrame, rate, "down") / 1e6)}`,
      );
      return;
    }
    const batch = batchOf.get(i);
    if (batch !== undefined) {
      if (batch.members[0] === i) pieces.push(batchStep(batch.b, batch.members));
      lines.push(`file '${fileOfItem.get(i)}'`);
      return;
    }
    const name = pieceName(i, format);
    const output = joinPath(files.workDir, name);
    const { args, seek } = pieceArgs(item.piece, sourcePlan, { inputs }, output, encoding);
    pieces.push({
      id: `piece-${i}`,
      kind: "piece",
      label: label(item),
      args,
      frames: item.frames,
      timeoutMs: budget(item.frames, seek),
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
  options: StepOptions = {},
): RenderSteps {
  return planItemSteps(plan, items, files, options);
}

/** The exact FFmpeg argument lists (without the binary) the render runs, in a valid order. */
export function planCommands(plan: RenderPlan, files: RenderFiles): string[][] {
  const steps = planSteps(plan, files);
  return [...steps.pieces.map((step) => step.args), steps.final.args];
}
