/**
 * The normalised-clip cache (docs/decisions/clip-cache.md): each source clip is normalised once
 * per output profile into `<prefix>/<profile-id>/<source-hash>.mp4`, with a sidecar
 * `<…>.json` (frame count, size, sha256 of the entry); the source's probe is kept under
 * `<prefix>/sources/<source-hash>.json`, so a warm run needs neither the sources nor their probes.
 *
 * Safety with many executions at once: entries are published with the storage's atomic `upload`
 * (local: temp file + rename; GCS: object writes), the sidecar after the entry, once the entry was
 * probed and decoded whole; before use an entry is checked against its sidecar (size, sha256) and its
 * probe (codec, size, rate, frame count, keyframe every GOP), recorded or run. Anything that does not
 * match is logged and rebuilt, never trusted.
 * Publishing is best effort: a job whose cache write fails still renders from its own copy.
 */
import { randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Blueprint } from "../blueprint/types.js";
import { forEachBounded } from "../concurrency.js";
import type { Config } from "../config.js";
import { isJobError, JobError } from "../errors.js";
import type { Logger } from "../log.js";
import {
  CACHE_GOP,
  type CacheProfile,
  cacheProfile,
  cacheSupportsCodec,
  type EntryFrames,
  entryBuildArgs,
  profileId,
} from "../media/assembly.js";
import { watchdogMs } from "../media/commands.js";
import { ALLOWED_DEMUXERS, type Demuxer, pinnedInput } from "../media/containers.js";
import { redactPaths, runFfmpeg, runFfprobeJson } from "../media/ffmpeg.js";
import { type MediaInfo, parseRate } from "../media/media-info.js";
import { planRender, type RenderPlan } from "../media/plan.js";
import { probeMedia } from "../media/probe.js";
import { fetchMedia } from "../storage/fetch-media.js";
import type { FetchedFile, FetchOptions, Storage } from "../storage/storage.js";

export interface CacheEntry extends EntryFrames {
  /** Local file of the entry (in place for local storage, downloaded for GCS). */
  file: string;
  /** `SHA256:<hex>` of each video packet's payload, frame by frame, as verified: the output's copied frames must match. */
  packetHashes?: readonly string[];
  /** `SHA256:<hex>` of the entry's decoder configuration (SPS/PPS): the output's must be the same. */
  extradataHash?: string;
  /**
   * The whole entry decoded without an error when it was built (or when `warm-cache` checked it),
   * and these are those bytes: the output check need not decode its copies again.
   */
  decodeVerified: boolean;
}

export interface CachedInputs {
  plan: RenderPlan;
  /** Storage key of each distinct clip → its verified entry. */
  entries: ReadonlyMap<string, CacheEntry>;
  audio: string;
  stats: CacheStats;
  /**
   * Read-only lookups (`--dry-run`): the FFmpeg arguments of the entries a real run would build now
   * (their frame counts in `entries` are estimated from the probe). Empty after a real run, which
   * builds them while preparing.
   */
  builds: string[][];
}

export interface CacheStats {
  /** Entries found valid. */
  hits: number;
  /** Entries built (missing, or rejected and rebuilt). */
  built: number;
  /** Entries found but rejected (corrupt, mismatched). */
  rejected: number;
  /** Source clips fetched (0 on a fully warm run). */
  sourcesFetched: number;
}

export interface CacheProgress {
  phase: "lookup" | "build";
  done: number;
  total: number;
}

/** What a sidecar says about its entry. */
export interface EntryMeta {
  version: 1;
  profile: CacheProfile;
  sourceHash: string;
  frames: number;
  bytes: number;
  sha256: string;
  /**
   * What the probe found when the entry was built: its packets' payload hashes and its SPS/PPS hash.
   * With them a lookup whose sha256 matches needs no probe (the bytes are the ones probed); sidecars
   * written before they existed are probed as before.
   */
  packetHashes?: string[];
  extradataHash?: string;
  /**
   * The whole entry was decoded without an error (FFmpeg printed nothing at `-v error`) when it was
   * built, or when `warm-cache` checked it. Sidecars written before this existed lack it (still usable).
   */
  decoded?: boolean;
}

/** The build-time probe recorded in a sidecar, when it is complete and consistent with it. */
export function recordedProbe(
  meta: EntryMeta,
): { frames: number; packetHashes: string[]; extradataHash: string } | undefined {
  const hashes = meta.packetHashes;
  if (
    !Array.isArray(hashes) ||
    hashes.length !== meta.frames ||
    !hashes.every((h) => typeof h === "string" && h.startsWith("SHA256:")) ||
    typeof meta.extradataHash !== "string"
  ) {
    return undefined;
  }
  return { frames: meta.frames, packetHashes: hashes, extradataHash: meta.extradataHash };
}

/** Whether this job uses the cache: CLIP_CACHE on and a codec the cache serves (`cacheSupportsCodec`). */
export function clipCacheApplies(config: Config, blueprint: Blueprint): boolean {
  return config.clipCache && cacheSupportsCodec(blueprint.output_config.video_codec);
}

/** Builds at once when the caller does not say (the job passes its granted CPUs): one single-threaded x264 each. */
const BUILD_CONCURRENCY = 2;

export function cacheKey(prefix: string, ...parts: string[]): string {
  return [prefix.replace(/\/+$/, ""), ...parts].join("/");
}

export async function sha256File(file: string, signal?: AbortSignal): Promise<string> {
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file, signal === undefined ? {} : { signal })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest("hex");
}

/** Copies `from` to `to` and returns the sha256 of the bytes written (`sha256-<hex>`, as local `describe`). */
export async function copyHashing(from: string, to: string, signal: AbortSignal): Promise<string> {
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  await mkdir(path.dirname(to), { recursive: true });
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(createReadStream(from), tap, createWriteStream(to), { signal });
  } catch (error) {
    await rm(to, { force: true });
    throw error;
  }
  return `sha256-${hash.digest("hex")}`;
}

/**
 * Reads a small JSON object from storage (in memory: no temporary file); undefined when missing or
 * unreadable. `_dir` is unused since reads stopped going through a file (kept for callers).
 */
export async function readJson(
  storage: Storage,
  key: string,
  _dir: string,
  logger: Logger,
  signal: AbortSignal,
): Promise<unknown> {
  try {
    return JSON.parse((await storage.read(key, signal)).toString("utf8")) as unknown;
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (isJobError(error) && error.code === "STORAGE_NOT_FOUND") return undefined;
    logger.warn({ key, err: error }, `Clip cache: ${key} is unreadable; ignoring it`);
    return undefined;
  }
}

export async function publish(
  storage: Storage,
  file: string,
  key: string,
  contentType: string,
  logger: Logger,
): Promise<boolean> {
  try {
    await storage.upload(file, key, { contentType, metadata: {} });
    return true;
  } catch (error) {
    logger.warn({ key, err: error }, `Clip cache: could not publish ${key}; continuing without it`);
    return false;
  }
}

export function validInfo(raw: unknown): MediaInfo | undefined {
  if (raw === null || typeof raw !== "object") return undefined;
  const info = raw as Partial<MediaInfo>;
  const positive = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v > 0;
  if (
    // Probes cached before demuxers were pinned, or naming one outside the allowlist: probe again.
    !(ALLOWED_DEMUXERS as readonly unknown[]).includes(info.demuxer) ||
    info.hasVideo !== true ||
    !positive(info.duration) ||
    !positive(info.width) ||
    !positive(info.height) ||
    !positive(info.displayWidth) ||
    !positive(info.displayHeight) ||
    typeof info.fps !== "number"
  ) {
    return undefined;
  }
  return info as MediaInfo;
}

export function validMeta(raw: unknown, profile: CacheProfile, sourceHash: string): EntryMeta | undefined {
  if (raw === null || typeof raw !== "object") return undefined;
  const meta = raw as Partial<EntryMeta>;
  if (meta.version !== 1 || meta.sourceHash !== sourceHash) return undefined;
  if (JSON.stringify(meta.profile) !== JSON.stringify(profile)) return undefined;
  if (!Number.isInteger(meta.frames) || (meta.frames ?? 0) < 1) return undefined;
  if (!Number.isInteger(meta.bytes) || typeof meta.sha256 !== "string") return undefined;
  return meta as EntryMeta;
}

/**
 * Whether the entry's bytes are the sidecar's (sha256). Local storage reads entries in place and
 * `describe` hashes them through the storage's hash memo (docs/decisions/clip-cache.md, "Source-hash
 * memo"): an entry file whose device, inode, size, mtime and ctime are those recorded when it was last
 * hashed is not read again. GCS entries are downloaded copies, hashed while downloading when fetched
 * with `ENTRY_FETCH` (else read again here).
 */
export async function entryMatchesSidecar(
  storage: Storage,
  entryKey: string,
  fetched: Pick<FetchedFile, "path" | "sha256">,
  meta: Pick<EntryMeta, "sha256">,
  signal: AbortSignal,
): Promise<boolean> {
  if (storage.name === "local")
    return (await storage.describe(entryKey, signal)).hash === `sha256-${meta.sha256}`;
  return (fetched.sha256 ?? (await sha256File(fetched.path, signal))) === meta.sha256;
}

/** How entries are fetched: a copy's sha256 is computed in the download's pass, for `entryMatchesSidecar`. */
export const ENTRY_FETCH: FetchOptions = { sha256: true };

interface ProbedEntry {
  frames: number;
  packetHashes: string[];
  extradataHash?: string;
}

/**
 * Probes an entry (demux only, no decode): H.264, the profile's size, rate and pixel format, no
 * B-frames, a keyframe exactly every GOP. Returns the frame count, or why it does not match.
 */
export async function probeEntry(
  file: string,
  profile: CacheProfile,
  options: { ffprobePath?: string; signal?: AbortSignal },
): Promise<ProbedEntry | { reason: string }> {
  const result = await runFfprobeJson(
    [
      "-select_streams",
      "v:0",
      "-show_entries",
      "stream=codec_name,width,height,pix_fmt,r_frame_rate,has_b_frames,extradata_hash:packet=flags,data_hash",
      "-show_data_hash",
      "SHA256",
      // Entries are MP4 files the job wrote: read them as such, local files only.
      ...pinnedInput(file, "mov"),
    ],
    options,
  );
  if (!result.ok) return { reason: result.reason };
  const json = result.json as {
    streams?: Array<Record<string, unknown>>;
    packets?: Array<{ flags?: string; data_hash?: string }>;
  };
  const stream = json.streams?.[0];
  if (stream === undefined) return { reason: "no video stream" };
  const expected: Record<string, unknown> = {
    codec_name: "h264",
    width: profile.width,
    height: profile.height,
    pix_fmt: profile.pixFmt,
    r_frame_rate: profile.rate,
    has_b_frames: 0,
  };
  for (const [name, value] of Object.entries(expected)) {
    if (stream[name] !== value)
      return { reason: `${name} is ${String(stream[name])}, expected ${String(value)}` };
  }
  const packets = json.packets ?? [];
  if (packets.length === 0) return { reason: "no frames" };
  for (let i = 0; i < packets.length; i++) {
    const key = packets[i]!.flags?.startsWith("K") === true;
    if (key !== (i % profile.gop === 0)) return { reason: `frame ${i} ${key ? "is" : "is not"} a keyframe` };
  }
  const extradata = stream["extradata_hash"];
  return {
    frames: packets.length,
    packetHashes: packets.map((p) => p.data_hash ?? ""),
    ...(typeof extradata === "string" ? { extradataHash: extradata } : {}),
  };
}

/**
 * Decodes a whole entry once (video only, demuxed as the MP4 the job wrote). Returns why it does not
 * decode cleanly — FFmpeg failed, or printed anything at `-v error` — or undefined when it does.
 */
export async function decodeEntry(
  file: string,
  frames: number,
  profile: CacheProfile,
  options: { ffmpegPath?: string; threads?: number; signal: AbortSignal; logger?: Logger },
): Promise<string | undefined> {
  const seconds = frames / (parseRate(profile.rate) || 30);
  return decodeProblem(file, "mov", "0:v:0", {
    ...options,
    // Decoding is several times faster than the encode the watchdog budget is sized for.
    timeoutMs: watchdogMs(seconds / 2, profile.width * profile.height, 1),
    label: "decoding a clip-cache entry to check it",
  });
}

/**
 * Decodes one stream of a file the job made (a cache entry, an encoded song) to the null muxer: why it
 * does not decode cleanly, or undefined when it does.
 */
export async function decodeProblem(
  file: string,
  demuxer: Demuxer,
  stream: "0:v:0" | "0:a:0",
  options: {
    ffmpegPath?: string;
    threads?: number;
    signal: AbortSignal;
    logger?: Logger;
    timeoutMs: number;
    label: string;
  },
): Promise<string | undefined> {
  const threads = String(Math.max(1, Math.floor(options.threads ?? 1)));
  try {
    const { stderr } = await runFfmpeg(
      [
        ...["-hide_banner", "-nostdin", "-v", "error", "-threads", threads],
        ...pinnedInput(file, demuxer),
        ...["-map", stream, "-f", "null", "-"],
      ],
      {
        ffmpegPath: options.ffmpegPath,
        signal: options.signal,
        ...(options.logger === undefined ? {} : { logger: options.logger }),
        timeoutMs: options.timeoutMs,
        label: options.label,
      },
    );
    const first = stderr.trim().split("\n")[0] ?? "";
    return first === "" ? undefined : `decoding it reports errors (${redactPaths(first)})`;
  } catch (error) {
    if (options.signal.aborted) throw options.signal.reason;
    if (isJobError(error) && error.code === "FFMPEG_FAILED") return `it does not decode (${error.message})`;
    throw error;
  }
}

/** One entry to build: what it is made of and where it goes. */
export interface EntryBuild {
  /** The source's storage key (for messages). */
  key: string;
  sourceHash: string;
  profile: CacheProfile;
  /** Storage keys of the entry and of its sidecar. */
  entryKey: string;
  metaKey: string;
  /** The local file the normalising command writes. */
  file: string;
  /** The normalising command (`entryBuildArgs`). */
  command: { args: string[]; timeoutMs: number };
  /** The source's length, for log lines. */
  seconds: number;
}

export interface BuildEntryOptions {
  storage: Storage;
  config: Pick<Config, "ffmpegPath" | "ffprobePath">;
  logger: Logger;
  signal: AbortSignal;
  /** Runs once the normalising command has finished (the caller may drop the source then). */
  afterEncode?: () => Promise<void>;
  /**
   * "best-effort" (a job): a failed write is logged and the entry still used from the local file;
   * "required" (`warm-cache`, whose point it is): a failed write throws.
   */
  publish: "best-effort" | "required";
}

/**
 * Builds one entry and publishes it, the same way for a job and for `warm-cache`: normalise, probe
 * (demux), decode the whole entry once (video; any error fails the build like an unusable file),
 * then publish the entry first and the sidecar last — with what the probe found and `decoded: true`
 * — so a reader never finds a sidecar without its entry.
 */
export async function buildEntry(
  build: EntryBuild,
  options: BuildEntryOptions,
): Promise<{ entry: CacheEntry; meta: EntryMeta; published: boolean }> {
  const { storage, config, logger, signal } = options;
  await runFfmpeg(build.command.args, {
    ffmpegPath: config.ffmpegPath,
    timeoutMs: build.command.timeoutMs,
    signal,
    logger,
    label: `normalising ${build.key} for the clip cache`,
    expectedSeconds: build.seconds,
  });
  await options.afterEncode?.();
  const unusable = (reason: string) =>
    new JobError(`Normalising ${build.key} produced an unusable file (${reason})`, { code: "FFMPEG_FAILED" });
  const probed = await probeEntry(build.file, build.profile, { ffprobePath: config.ffprobePath, signal });
  if ("reason" in probed) throw unusable(probed.reason);
  const undecodable = await decodeEntry(build.file, probed.frames, build.profile, {
    ffmpegPath: config.ffmpegPath,
    signal,
    logger,
  });
  if (undecodable !== undefined) throw unusable(undecodable);
  const meta: EntryMeta = {
    version: 1,
    profile: build.profile,
    sourceHash: build.sourceHash,
    frames: probed.frames,
    bytes: (await stat(build.file)).size,
    sha256: await sha256File(build.file, signal),
    packetHashes: probed.packetHashes,
    ...(probed.extradataHash === undefined ? {} : { extradataHash: probed.extradataHash }),
    decoded: true,
  };
  const write = async (file: string, key: string, contentType: string): Promise<boolean> => {
    if (options.publish === "best-effort") return publish(storage, file, key, contentType, logger);
    await storage.upload(file, key, { contentType, metadata: {} }, signal);
    return true;
  };
  // Entry first, sidecar last: a reader never finds a sidecar without its entry.
  let published = await write(build.file, build.entryKey, "video/mp4");
  if (published) {
    const metaFile = `${build.file}.json`;
    try {
      await writeFile(metaFile, JSON.stringify(meta));
      published = await write(metaFile, build.metaKey, "application/json");
    } finally {
      await rm(metaFile, { force: true });
    }
  }
  return { entry: { file: build.file, ...probed, decodeVerified: true }, meta, published };
}

/**
 * Like `prepareInputs`, through the cache: describes the clips (content hashes, no download),
 * reads their cached probes, plans, then finds or builds each clip's entry. Sources are fetched
 * only for missing probes or entries; in GCS mode each is deleted once normalised.
 */
export interface PrepareCachedOptions {
  config: Config;
  logger: Logger;
  signal: AbortSignal;
  onProgress?: (p: CacheProgress) => void;
  /** Test hook: the cache's GOP (default CACHE_GOP). */
  gop?: number;
  /** Entries built at once, one single-threaded FFmpeg each (default 2; the job passes its granted CPUs). */
  buildConcurrency?: number;
  /** `--dry-run`: look entries up, build and publish nothing (`CachedInputs.builds` says what a run would build). */
  readOnly?: boolean;
}

/**
 * On the first failure (or an abort) everything still running is aborted and awaited before the
 * error is thrown, so nothing writes into `workDir` after the caller removes it.
 */
export async function prepareCachedInputs(
  blueprint: Blueprint,
  storage: Storage,
  workDir: string,
  options: PrepareCachedOptions,
): Promise<CachedInputs> {
  if (options.signal.aborted) throw options.signal.reason;
  try {
    // Each phase runs under `forEachBounded`: it stops at its first failure and awaits the rest.
    return await prepare(blueprint, storage, workDir, options);
  } catch (error) {
    throw options.signal.aborted ? options.signal.reason : error;
  }
}

async function prepare(
  blueprint: Blueprint,
  storage: Storage,
  workDir: string,
  options: PrepareCachedOptions,
): Promise<CachedInputs> {
  const { config, signal } = options;
  const logger = options.logger.child({ component: "clip-cache" });
  const prefix = config.clipCachePrefix;
  const gop = options.gop ?? CACHE_GOP;
  const probeOptions = { ffprobePath: config.ffprobePath, signal };
  const mediaDir = path.join(workDir, "media");
  const metaDir = path.join(workDir, "cache-meta");
  const entryDir = path.join(workDir, "cache");
  await mkdir(entryDir, { recursive: true });
  const clipKeys = [...new Set(blueprint.moves.map((move) => move.video_path))];
  const fetchConcurrency = Math.max(1, config.fetchConcurrency);
  const stats: CacheStats = { hits: 0, built: 0, rejected: 0, sourcesFetched: 0 };

  // The clips are only described (content hash from metadata or the local file), not fetched.
  const hashes = new Map(
    await forEachBounded(
      clipKeys,
      fetchConcurrency,
      signal,
      async (key, stop) => [key, (await storage.describe(key, stop)).hash] as const,
    ),
  );
  const hashOf = (key: string) => hashes.get(key)!;

  // Sources fetched by this run (at most once each), as private copies whose bytes are exactly the
  // ones the cache key names: a source replaced after it was described (another job's output, an
  // overwrite in the bucket) is detected, never normalised under the old hash.
  const sources = new Map<string, Promise<string>>();
  const source = (key: string, signal: AbortSignal): Promise<string> => {
    let file = sources.get(key);
    if (file === undefined) {
      file = (async () => {
        const fetched = await storage.fetch(key, mediaDir, signal);
        let copy = fetched.path;
        let hash = fetched.hash;
        if (fetched.residence === "original") {
          // The stored file itself: copy it and hash the copy.
          copy = path.join(mediaDir, "sources", `${randomUUID()}${path.extname(key)}`);
          hash = await copyHashing(fetched.path, copy, signal);
        }
        stats.sourcesFetched += 1;
        if (hash !== hashOf(key)) {
          await rm(copy, { force: true });
          throw new JobError(
            `Clip ${key} changed while the job was reading it (its content no longer matches what was checked); run the job again`,
            { code: "STORAGE_ERROR", retryable: true },
          );
        }
        return copy;
      })();
      // Awaited by the task that asked for it; a later phase may reuse it.
      file.catch(() => {});
      sources.set(key, file);
    }
    return file;
  };
  const dropSource = async (key: string) => {
    if (!sources.has(key)) return;
    const file = await sources.get(key)!;
    await rm(file, { force: true });
  };

  const infos = new Map<string, MediaInfo>();
  await forEachBounded(clipKeys, fetchConcurrency, signal, async (key, signal) => {
    const probeOptions = { ffprobePath: config.ffprobePath, signal };
    const probeKey = cacheKey(prefix, "sources", `${hashOf(key)}.json`);
    const cached = validInfo(await readJson(storage, probeKey, metaDir, logger, signal));
    if (cached !== undefined) {
      infos.set(key, cached);
      return;
    }
    const info = await probeMedia(await source(key, signal), key, probeOptions);
    infos.set(key, info);
    if (!info.hasVideo || options.readOnly === true) return;
    const file = path.join(metaDir, `${randomUUID()}.json`);
    await mkdir(metaDir, { recursive: true });
    await writeFile(file, JSON.stringify(info));
    await publish(storage, file, probeKey, "application/json", logger);
    await rm(file, { force: true });
  });
  const song = (
    await fetchMedia(storage, [blueprint.audio_path], mediaDir, { concurrency: 1, signal, logger })
  ).get(blueprint.audio_path)!.path;
  const audioInfo = await probeMedia(song, blueprint.audio_path, probeOptions);
  const plan = planRender(blueprint, infos, audioInfo);
  const profile = cacheProfile(plan, gop);
  const profileDir = profileId(profile);

  // Lookup: an entry is used only if its sidecar, bytes and stream all match.
  const entries = new Map<string, CacheEntry>();
  const missing: string[] = [];
  let looked = 0;
  await forEachBounded(clipKeys, fetchConcurrency, signal, async (key, signal) => {
    const probeOptions = { ffprobePath: config.ffprobePath, signal };
    const hash = hashOf(key);
    const entryKey = cacheKey(prefix, profileDir, `${hash}.mp4`);
    const metaKey = cacheKey(prefix, profileDir, `${hash}.json`);
    const rawMeta = await readJson(storage, metaKey, metaDir, logger, signal);
    const reject = (reason: string) => {
      stats.rejected += 1;
      logger.warn(
        { key, entry: entryKey, reason },
        `Clip cache: rejected the entry for ${key} (${reason}); rebuilding it`,
      );
      missing.push(key);
    };
    try {
      if (rawMeta === undefined) {
        missing.push(key);
        return;
      }
      const meta = validMeta(rawMeta, profile, hash);
      if (meta === undefined) return reject("sidecar does not match");
      let fetched: FetchedFile;
      try {
        fetched = await storage.fetch(entryKey, entryDir, signal, ENTRY_FETCH);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        return reject(isJobError(error) ? error.message : "entry unreadable");
      }
      if (fetched.bytes !== meta.bytes) return reject(`size ${fetched.bytes}, expected ${meta.bytes}`);
      if (!(await entryMatchesSidecar(storage, entryKey, fetched, meta, signal))) {
        return reject("checksum mismatch");
      }
      // The very bytes that were probed when the entry was built: what that probe found holds.
      const recorded = recordedProbe(meta);
      if (recorded !== undefined) {
        entries.set(key, { file: fetched.path, ...recorded, decodeVerified: meta.decoded === true });
        stats.hits += 1;
        return;
      }
      const probed = await probeEntry(fetched.path, profile, probeOptions);
      if ("reason" in probed) return reject(probed.reason);
      if (probed.frames !== meta.frames) return reject(`${probed.frames} frames, expected ${meta.frames}`);
      entries.set(key, { file: fetched.path, ...probed, decodeVerified: meta.decoded === true });
      stats.hits += 1;
    } finally {
      looked += 1;
      options.onProgress?.({ phase: "lookup", done: looked, total: clipKeys.length });
    }
  });

  // The normalising command for one source: what a dry run prints and what a build runs.
  const buildArgsFor = async (key: string, file: string, signal: AbortSignal) =>
    entryBuildArgs(
      {
        file: await source(key, signal),
        demuxer: plan.sources[key]!.demuxer,
        fit: plan.sources[key]!.fit,
        duration: infos.get(key)!.duration,
      },
      plan,
      file,
      gop,
    );

  if (options.readOnly === true) {
    const builds = await forEachBounded(missing, fetchConcurrency, signal, async (key, signal) => {
      const file = path.join(entryDir, `${hashOf(key)}.mp4`);
      const { args } = await buildArgsFor(key, file, signal);
      const info = infos.get(key)!;
      entries.set(key, {
        file,
        frames: Math.max(1, Math.round(info.duration * plan.fps)),
        decodeVerified: false,
      });
      return args;
    });
    await Promise.all(clipKeys.map((key) => dropSource(key).catch(() => {})));
    return { plan, entries, audio: song, stats, builds };
  }

  // Where the storage serves entries in place (local), a job reads the entry it has just published
  // there, as later jobs will, and drops its own copy: a cold job's temp dir then does not hold every
  // entry (Cloud Run counts /tmp as memory). Only if the stored file is the one built (size, sha256).
  const inPlace = async (
    entry: CacheEntry,
    entryKey: string,
    meta: EntryMeta,
    signal: AbortSignal,
  ): Promise<CacheEntry> => {
    if (!storage.fetchesInPlace) return entry;
    const stored = await storage.fetch(entryKey, entryDir, signal).catch(() => undefined);
    if (stored?.residence !== "original" || stored.bytes !== meta.bytes) return entry;
    if ((await sha256File(stored.path, signal).catch(() => undefined)) !== meta.sha256) return entry;
    await rm(entry.file, { force: true });
    return { ...entry, file: stored.path };
  };

  // Build what is missing, one per granted CPU.
  const buildConcurrency = Math.max(1, options.buildConcurrency ?? BUILD_CONCURRENCY);
  let built = 0;
  await forEachBounded(missing, buildConcurrency, signal, async (key, signal) => {
    const hash = hashOf(key);
    const file = path.join(entryDir, `${hash}.${randomUUID().slice(0, 8)}.mp4`);
    const started = performance.now();
    const { entry, meta } = await buildEntry(
      {
        key,
        sourceHash: hash,
        profile,
        entryKey: cacheKey(prefix, profileDir, `${hash}.mp4`),
        metaKey: cacheKey(prefix, profileDir, `${hash}.json`),
        file,
        command: await buildArgsFor(key, file, signal),
        seconds: infos.get(key)!.duration,
      },
      { storage, config, logger, signal, afterEncode: () => dropSource(key), publish: "best-effort" },
    );
    entries.set(key, await inPlace(entry, cacheKey(prefix, profileDir, `${hash}.mp4`), meta, signal));
    stats.built += 1;
    built += 1;
    logger.info(
      { key, frames: meta.frames, bytes: meta.bytes, duration_ms: Math.round(performance.now() - started) },
      `Clip cache: normalised ${key}`,
    );
    options.onProgress?.({ phase: "build", done: built, total: missing.length });
  });
  // Sources fetched only for their probe are no longer needed either.
  await Promise.all(clipKeys.map((key) => dropSource(key).catch(() => {})));

  logger.info({ ...stats, profile: profileDir, clips: clipKeys.length }, "Clip cache ready");
  return { plan, entries, audio: song, stats, builds: [] };
}
