/**
 * `warm-cache`: normalises every clip under a storage prefix into the clip cache for one output
 * profile, so that jobs rendering at that profile find every clip cached (docs/decisions/clip-cache.md,
 * "Pre-warming"). Same entries, sidecars and probes as a job builds (`src/job/clip-cache.ts`);
 * idempotent (a verified entry is left alone), resumable (every entry is published on its own), and
 * sharded: task `CLOUD_RUN_TASK_INDEX` of `CLOUD_RUN_TASK_COUNT` takes the clips whose key hashes to
 * it, so one Cloud Run execution with `taskCount: N` splits the library without a scheduler.
 */
import { createHash, randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pLimit from "p-limit";
import { parseBlueprint } from "../blueprint/parse.js";
import { extensionOf } from "../blueprint/paths.js";
import { formatIssues } from "../blueprint/summary.js";
import type { Blueprint } from "../blueprint/types.js";
import type { Config } from "../config.js";
import { coerceError, isJobError, JobError } from "../errors.js";
import type { Logger } from "../log.js";
import { CACHE_GOP, cacheProfile, entryBuildArgs, profileId } from "../media/assembly.js";
import type { MediaInfo } from "../media/media-info.js";
import { planRender, type RenderPlan } from "../media/plan.js";
import { probeMedia } from "../media/probe.js";
import type { FetchedFile, Storage } from "../storage/storage.js";
import {
  buildEntry,
  cacheKey,
  copyHashing,
  decodeEntry,
  ENTRY_FETCH,
  type EntryMeta,
  entryMatchesSidecar,
  probeEntry,
  readJson,
  recordedProbe,
  validInfo,
  validMeta,
} from "./clip-cache.js";

/** File extensions taken as clips when listing a prefix (containers the job opens for video). */
export const CLIP_EXTENSIONS = ["mp4", "m4v", "mov", "mkv", "webm", "avi", "ts", "mts"] as const;

export interface WarmCacheOptions {
  /** Storage prefix of the library (`clips`, `Bachata_steps`, …). */
  prefix: string;
  /** Output size "WxH" as a blueprint's `output_config.resolution`; default: each clip's own size, as a job whose first move it is. */
  resolution?: string;
  /** Output rate; default VIDEO_FPS. */
  fps?: number;
  /** This process's share: task `index` of `count`. */
  shard: { index: number; count: number };
  /** Entries built at once, one single-threaded x264 each (default 1). */
  jobs?: number;
  /** Test hook: the cache's GOP. */
  gop?: number;
}

export interface WarmSummary {
  /** Clips under the prefix. */
  clips: number;
  /** Clips of this shard. */
  share: number;
  /** Entries found valid and left alone. */
  verified: number;
  /** Entries built (missing before, or rejected). */
  built: number;
  /** Entries found but rejected (corrupt, mismatched) and rebuilt. */
  rejected: number;
  /** Clips that could not be normalised (logged with the reason). */
  failed: number;
  /** Profile directories written or checked. */
  profiles: string[];
}

/** The shard a key belongs to: a function of the key alone, so shards never overlap and always cover. */
export function shardOf(key: string, count: number): number {
  if (count <= 1) return 0;
  return createHash("sha256").update(key).digest().readUInt32BE(0) % count;
}

/** A one-move blueprint as a job would parse it: the profile comes from the job's own planning. */
function blueprintFor(key: string, config: Config, options: Pick<WarmCacheOptions, "resolution" | "fps">) {
  const text = JSON.stringify({
    task_id: "warm-cache",
    audio_path: "warm-cache/song.m4a",
    moves: [{ clip_id: "clip", video_path: key, start_time: 0, duration: 1 }],
    output_config: {
      output_path: "warm-cache/output.mp4",
      ...(options.resolution === undefined ? {} : { resolution: options.resolution }),
      ...(options.fps === undefined ? {} : { frame_rate: options.fps }),
    },
  });
  return parseBlueprint(text, config.defaults);
}

/** Checks `--resolution`, `--fps` and the encoder settings once, before any clip: INVALID_CONFIG otherwise. */
export function checkWarmOptions(
  config: Config,
  options: Pick<WarmCacheOptions, "resolution" | "fps">,
): void {
  const parsed = blueprintFor("warm-cache/clip.mp4", config, options);
  if (!parsed.ok) {
    throw new JobError(
      `Invalid warm-cache options: ${formatIssues(parsed.issues, "; ").replaceAll("output_config.", "")}`,
      { code: "INVALID_CONFIG" },
    );
  }
  if (parsed.blueprint.output_config.video_codec !== "libx264") {
    throw new JobError(
      `The clip cache is for libx264 only (VIDEO_CODEC is ${parsed.blueprint.output_config.video_codec})`,
      { code: "INVALID_CONFIG" },
    );
  }
}

const SILENT_SONG: MediaInfo = {
  demuxer: "mov",
  duration: 1,
  hasVideo: false,
  hasAudio: true,
  width: 0,
  height: 0,
  sar: 1,
  rotation: 0,
  displayWidth: 0,
  displayHeight: 0,
  fps: 0,
  variableFrameRate: false,
};

/** The plan a job at this profile would make with `key` as a clip (only its size, rate and encoding are used). */
function planFor(key: string, info: MediaInfo, config: Config, options: WarmCacheOptions): RenderPlan {
  const parsed = blueprintFor(key, config, options);
  if (!parsed.ok) {
    throw new JobError(`Clip key ${key} is not usable: ${formatIssues(parsed.issues, "; ")}`, {
      code: "INVALID_BLUEPRINT",
    });
  }
  const blueprint: Blueprint = parsed.blueprint;
  return planRender(blueprint, new Map([[blueprint.moves[0]!.video_path, info]]), SILENT_SONG);
}

type ClipOutcome = { result: "verified" | "built"; rejected: boolean; profile: string };

/**
 * Warms this shard's clips under `options.prefix`. Never throws for one clip: its failure is logged
 * and counted; the caller turns `failed > 0` into exit code 1.
 */
export async function warmCache(
  storage: Storage,
  config: Config,
  options: WarmCacheOptions,
  context: { logger: Logger; signal: AbortSignal; tempRoot?: string },
): Promise<WarmSummary> {
  const { signal } = context;
  const logger = context.logger.child({ component: "warm-cache" });
  const gop = options.gop ?? CACHE_GOP;
  const prefix = config.clipCachePrefix;
  const probeOptions = { ffprobePath: config.ffprobePath, signal };
  const cachePrefix = prefix.replace(/\/+$/, "");
  const listed = await storage.list(options.prefix, signal);
  const clips = listed.filter(
    (key) =>
      (CLIP_EXTENSIONS as readonly string[]).includes(extensionOf(key)) &&
      key !== cachePrefix &&
      !key.startsWith(`${cachePrefix}/`),
  );
  const share = clips.filter((key) => shardOf(key, options.shard.count) === options.shard.index);
  const summary: WarmSummary = {
    clips: clips.length,
    share: share.length,
    verified: 0,
    built: 0,
    rejected: 0,
    failed: 0,
    profiles: [],
  };
  logger.info(
    {
      prefix: options.prefix,
      clips: clips.length,
      share: share.length,
      shard: options.shard.index,
      shards: options.shard.count,
      skipped: listed.length - clips.length,
    },
    `Warm cache: ${share.length} of ${clips.length} clips under ${options.prefix} are this task's (shard ${options.shard.index + 1} of ${options.shard.count})`,
  );
  const workDir = await mkdtemp(path.join(context.tempRoot ?? os.tmpdir(), "warm-cache-"));
  const profiles = new Set<string>();
  let done = 0;
  try {
    const limit = pLimit(Math.max(1, options.jobs ?? 1));
    await Promise.all(
      share.map((key) =>
        limit(async () => {
          if (signal.aborted) return;
          const started = performance.now();
          const dir = path.join(workDir, randomUUID());
          try {
            const outcome = await warmClip(key, dir);
            profiles.add(outcome.profile);
            if (outcome.result === "verified") summary.verified += 1;
            else summary.built += 1;
            if (outcome.rejected) summary.rejected += 1;
            done += 1;
            logger.info(
              {
                key,
                result: outcome.result,
                profile: outcome.profile,
                done,
                total: share.length,
                duration_ms: Math.round(performance.now() - started),
              },
              `Warm cache: ${key} ${outcome.result === "verified" ? "already cached" : "normalised"} (${done}/${share.length})`,
            );
          } catch (error) {
            if (signal.aborted) return;
            summary.failed += 1;
            done += 1;
            const failure = coerceError(error);
            logger.error(
              { key, code: failure.code, err: error, done, total: share.length },
              `Warm cache: ${key} failed (${failure.message}) (${done}/${share.length})`,
            );
          } finally {
            await rm(dir, { recursive: true, force: true }).catch(() => {});
          }
        }),
      ),
    );
  } finally {
    await rm(workDir, { recursive: true, force: true }).catch(() => {});
  }
  if (signal.aborted) throw signal.reason;
  summary.profiles = [...profiles].sort();
  return summary;

  async function warmClip(key: string, dir: string): Promise<ClipOutcome> {
    await mkdir(dir, { recursive: true });
    const hash = (await storage.describe(key, signal)).hash;
    // The bytes normalised are the bytes hashed (a private copy), as in a job.
    let sourceFile: Promise<string> | undefined;
    const source = () => {
      sourceFile ??= (async () => {
        const fetched = await storage.fetch(key, path.join(dir, "media"), signal);
        let copy = fetched.path;
        let got = fetched.hash;
        if (storage.name === "local") {
          copy = path.join(dir, "media", `source${path.extname(key)}`);
          got = await copyHashing(fetched.path, copy, signal);
        }
        if (got !== hash) {
          throw new JobError(`Clip ${key} changed while it was being read; run warm-cache again`, {
            code: "STORAGE_ERROR",
            retryable: true,
          });
        }
        return copy;
      })();
      return sourceFile;
    };

    const probeKey = cacheKey(prefix, "sources", `${hash}.json`);
    let info = validInfo(await readJson(storage, probeKey, dir, logger, signal));
    if (info === undefined) {
      info = await probeMedia(await source(), key, probeOptions);
      if (info.hasVideo) {
        const file = path.join(dir, "probe.json");
        await writeFile(file, JSON.stringify(info));
        await storage.upload(file, probeKey, { contentType: "application/json", metadata: {} }, signal);
      }
    }
    if (!info.hasVideo) throw new JobError(`Clip ${key} has no video stream`, { code: "MEDIA_INVALID" });
    const plan = planFor(key, info, config, options);
    const profile = cacheProfile(plan, gop);
    const profileDir = profileId(profile);
    const entryKey = cacheKey(prefix, profileDir, `${hash}.mp4`);
    const metaKey = cacheKey(prefix, profileDir, `${hash}.json`);

    // An entry already there is checked exactly as a job checks it before use.
    let rejected = false;
    const rawMeta = await readJson(storage, metaKey, dir, logger, signal);
    if (rawMeta !== undefined) {
      const reason = await checkEntry(rawMeta);
      if (reason === undefined) return { result: "verified", rejected: false, profile: profileDir };
      rejected = true;
      logger.warn(
        { key, entry: entryKey, reason },
        `Warm cache: rejected the entry for ${key} (${reason}); rebuilding it`,
      );
    }

    const file = path.join(dir, "entry.mp4");
    const sourcePlan = Object.values(plan.sources)[0]!;
    const sourceCopy = await source();
    await buildEntry(
      {
        key,
        sourceHash: hash,
        profile,
        entryKey,
        metaKey,
        file,
        command: entryBuildArgs(
          { file: sourceCopy, demuxer: sourcePlan.demuxer, fit: sourcePlan.fit, duration: info.duration },
          plan,
          file,
          gop,
        ),
        seconds: info.duration,
      },
      {
        storage,
        config,
        logger,
        signal,
        afterEncode: () => rm(sourceCopy, { force: true }),
        publish: "required",
      },
    );
    return { result: "built", rejected, profile: profileDir };

    async function checkEntry(raw: unknown): Promise<string | undefined> {
      const meta = validMeta(raw, profile, hash);
      if (meta === undefined) return "sidecar does not match";
      let fetched: FetchedFile;
      try {
        fetched = await storage.fetch(entryKey, path.join(dir, "cache"), signal, ENTRY_FETCH);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        return isJobError(error) ? error.message : "entry unreadable";
      }
      try {
        if (fetched.bytes !== meta.bytes) return `size ${fetched.bytes}, expected ${meta.bytes}`;
        if (!(await entryMatchesSidecar(storage, entryKey, fetched, meta, signal))) {
          return "checksum mismatch";
        }
        const probedEntry = await probeEntry(fetched.path, profile, probeOptions);
        if ("reason" in probedEntry) return probedEntry.reason;
        if (probedEntry.frames !== meta.frames)
          return `${probedEntry.frames} frames, expected ${meta.frames}`;
        // A sidecar from before probes (or decodes) were recorded: record them, so jobs need not
        // probe the entry nor decode its copies. An entry that does not decode is rebuilt.
        const recordProbe = recordedProbe(meta) === undefined && probedEntry.extradataHash !== undefined;
        const recordDecode = meta.decoded !== true;
        if (recordDecode) {
          const undecodable = await decodeEntry(fetched.path, probedEntry.frames, profile, {
            ffmpegPath: config.ffmpegPath,
            signal,
            logger,
          });
          if (undecodable !== undefined) return undecodable;
        }
        if (recordProbe || recordDecode) {
          const upgraded: EntryMeta = {
            ...meta,
            ...(recordProbe
              ? { packetHashes: probedEntry.packetHashes, extradataHash: probedEntry.extradataHash }
              : {}),
            decoded: true,
          };
          const metaFile = path.join(dir, "upgraded.json");
          await writeFile(metaFile, JSON.stringify(upgraded));
          await storage.upload(metaFile, metaKey, { contentType: "application/json", metadata: {} }, signal);
        }
        return undefined;
      } finally {
        if (storage.name !== "local") await rm(fetched.path, { force: true });
      }
    }
  }
}
