/**
 * The encoded song, cached like clips (docs/decisions/clip-cache.md, "Encoded songs"): the song's
 * encode for one timeline (cut or padded to its length, faded, optionally normalised, encoded with one
 * codec and bitrate) is stored at `<prefix>/songs/<key>.<ext>` with a sidecar, keyed by the sha256 of
 * the song's bytes and of the encode's exact FFmpeg arguments (paths left out) — so any change to the
 * length, fades, loudness, codec, bitrate or the encoder's options is another key. A later job with
 * the same song and timeline copies it instead of encoding the song again.
 *
 * Like clip entries: verified before use (size and sha256 against the sidecar, the stream probed),
 * published best effort (entry first, sidecar last), and only for bytes hashed before and after the
 * encode (a song replaced while it was encoded is not stored).
 */
import { createHash } from "node:crypto";
import { copyFile, mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "../log.js";
import { CACHE_ENGINE_VERSION } from "../media/assembly.js";
import type { RenderSteps } from "../media/commands.js";
import { pinnedInput } from "../media/containers.js";
import { runFfprobeJson } from "../media/ffmpeg.js";
import type { RenderPlan } from "../media/plan.js";
import type { Storage } from "../storage/storage.js";
import { cacheKey, decodeProblem, publish, readJson, sha256File } from "./clip-cache.js";

interface SongMeta {
  version: 1;
  key: string;
  bytes: number;
  sha256: string;
  /** The whole file decoded without errors when it was stored. */
  decoded?: true;
  /** `SHA256:<hex>` of each audio packet's payload, in order (with `decoded`). */
  packetHashes?: string[];
}

export interface SongCacheUse {
  /** The steps to run: without the song's encode on a hit. */
  steps: RenderSteps;
  hit: boolean;
  /**
   * On a hit of an encode decoded when it was stored: its audio packets' hashes. The output's audio
   * is these packets copied, so the output check compares them instead of decoding the audio again.
   */
  audioPacketHashes?: readonly string[];
  /** After a successful render: publishes a freshly encoded song (best effort); a no-op on a hit. */
  publish(): Promise<void>;
}

/**
 * Decodes an encoded song once and lists its packets' hashes, for the sidecar: later jobs copying it
 * need not decode it again (their output check compares packet hashes). Nothing when either fails.
 */
async function decodedPackets(
  file: string,
  ext: string,
  options: { signal: AbortSignal; ffprobePath?: string; ffmpegPath?: string; logger: Logger },
): Promise<Pick<SongMeta, "decoded" | "packetHashes">> {
  const demuxer = ext === ".mp4" ? "mov" : "matroska";
  const input = pinnedInput(file, demuxer);
  const probe = await runFfprobeJson(
    ["-show_data_hash", "SHA256", "-select_streams", "a:0", "-show_entries", "packet=data_hash", ...input],
    { ffprobePath: options.ffprobePath, signal: options.signal },
  );
  const packets = probe.ok ? ((probe.json as { packets?: Array<{ data_hash?: string }> }).packets ?? []) : [];
  const hashes = packets.map((packet) => packet.data_hash);
  if (hashes.length === 0 || hashes.some((hash) => typeof hash !== "string")) return {};
  const problem = await decodeProblem(file, demuxer, "0:a:0", {
    ...options,
    timeoutMs: 120_000,
    label: "decoding the encoded song to check it",
  }).catch((error: unknown) => {
    // Not decodable here (a timeout, …): the sidecar simply records no hashes.
    if (options.signal.aborted) throw error;
    return "not decoded";
  });
  return problem === undefined ? { decoded: true, packetHashes: hashes as string[] } : {};
}

/** The song step's input and output paths, from its argument list (`-i <song>` … `<output>`). */
function songFiles(args: readonly string[]): { input: string; output: string } | undefined {
  const at = args.indexOf("-i");
  const input = at === -1 ? undefined : args[at + 1];
  const output = args.at(-1);
  return input === undefined || output === undefined ? undefined : { input, output };
}

/**
 * Looks the song's encode up in the cache. On a hit the cached file is put where the final join
 * expects the encoded song and the encode is dropped from the steps; on a miss the encoded file is kept
 * after the render (not removed with the pieces) so `publish` can store it.
 */
export async function useSongCache(
  plan: RenderPlan,
  steps: RenderSteps,
  storage: Storage,
  options: {
    prefix: string;
    workDir: string;
    logger: Logger;
    signal: AbortSignal;
    ffprobePath?: string;
    ffmpegPath?: string;
  },
): Promise<SongCacheUse> {
  const { logger, signal } = options;
  const unchanged: SongCacheUse = { steps, hit: false, publish: async () => {} };
  const step = steps.pieces.find((piece) => piece.kind === "audio");
  const files = step === undefined ? undefined : songFiles(step.args);
  if (step === undefined || files === undefined) return unchanged;
  const songHash = await sha256File(files.input, signal);
  const recipe = step.args.map((arg) =>
    arg === files.input ? "<song>" : arg === files.output ? "<output>" : arg,
  );
  const key = createHash("sha256")
    .update(JSON.stringify({ engine: CACHE_ENGINE_VERSION, song: songHash, recipe }))
    .digest("hex");
  const ext = path.extname(files.output);
  const entryKey = cacheKey(options.prefix, "songs", `${key}${ext}`);
  const metaKey = cacheKey(options.prefix, "songs", `${key}.json`);
  const dir = path.join(options.workDir, "song-cache");
  await mkdir(dir, { recursive: true });

  const writeMeta = async (meta: SongMeta) => {
    const metaFile = path.join(dir, `${key}.json`);
    await writeFile(metaFile, JSON.stringify(meta));
    await publish(storage, metaFile, metaKey, "application/json", logger);
    await rm(metaFile, { force: true });
  };

  const raw = (await readJson(storage, metaKey, dir, logger, signal)) as Partial<SongMeta> | undefined;
  if (raw !== undefined) {
    const reason = await (async () => {
      if (
        raw.version !== 1 ||
        raw.key !== key ||
        !Number.isInteger(raw.bytes) ||
        typeof raw.sha256 !== "string"
      )
        return "sidecar does not match";
      const fetched = await storage.fetch(entryKey, dir, signal, { sha256: true }).catch(() => {
        if (signal.aborted) throw signal.reason;
        return undefined;
      });
      if (fetched === undefined) return "entry unreadable";
      if (fetched.bytes !== raw.bytes) return `size ${fetched.bytes}, expected ${raw.bytes}`;
      // Hashed in the download's own pass when it is a copy; an original in place is read here.
      if ((fetched.sha256 ?? (await sha256File(fetched.path, signal))) !== raw.sha256)
        return "checksum mismatch";
      const probe = await runFfprobeJson(
        [
          "-show_entries",
          "stream=codec_type,duration:format=duration",
          // The job's own encode: MP4 (AAC, MP3, Opus in mp4) or Matroska/WebM.
          ...pinnedInput(fetched.path, ext === ".mp4" ? "mov" : "matroska"),
        ],
        { ffprobePath: options.ffprobePath, signal },
      );
      const json = probe.ok
        ? (probe.json as { streams?: Array<{ codec_type?: string }>; format?: { duration?: string } })
        : {};
      const streams = json.streams ?? [];
      if (streams.length !== 1 || streams[0]!.codec_type !== "audio") return "not a single audio stream";
      const duration = Number(json.format?.duration);
      if (!(Math.abs(duration - plan.audio.duration) < 0.1))
        return `lasts ${duration} s, expected ${plan.audio.duration} s`;
      await mkdir(path.dirname(files.output), { recursive: true });
      if (storage.name === "local") await copyFile(fetched.path, files.output);
      else await rename(fetched.path, files.output);
      return undefined;
    })();
    if (reason === undefined) {
      logger.info({ song: plan.audio.key, entry: entryKey }, "Song cache: using the encoded song");
      // The sha256 matched: recorded hashes are of these very bytes. A sidecar from before they were
      // recorded gets them now (the decode the output check would otherwise do), for later jobs.
      let hashes =
        raw.decoded === true && Array.isArray(raw.packetHashes) && raw.packetHashes.length > 0
          ? (raw.packetHashes as string[])
          : undefined;
      if (hashes === undefined) {
        const upgrade = await decodedPackets(files.output, ext, options);
        hashes = upgrade.packetHashes;
        if (upgrade.decoded === true) await writeMeta({ ...(raw as SongMeta), ...upgrade });
      }
      return {
        hit: true,
        steps: { ...steps, pieces: steps.pieces.filter((piece) => piece !== step) },
        ...(hashes === undefined ? {} : { audioPacketHashes: hashes }),
        publish: async () => {},
      };
    }
    logger.warn(
      { entry: entryKey, reason },
      `Song cache: rejected the encoded song (${reason}); encoding it`,
    );
  }

  return {
    hit: false,
    // Kept after the join, for `publish`; the work dir is removed with the job.
    steps: { ...steps, outputs: steps.outputs.filter((file) => file !== files.output) },
    async publish() {
      try {
        // The bytes encoded are the bytes hashed: a song replaced meanwhile is not stored under this key.
        if ((await sha256File(files.input, signal)) !== songHash) return;
        const meta: SongMeta = {
          version: 1,
          key,
          bytes: (await stat(files.output)).size,
          sha256: await sha256File(files.output, signal),
          ...(await decodedPackets(files.output, ext, options)),
        };
        if (await publish(storage, files.output, entryKey, "application/octet-stream", logger)) {
          await writeMeta(meta);
        }
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        logger.warn({ err: error }, "Song cache: could not store the encoded song; continuing");
      } finally {
        await rm(files.output, { force: true }).catch(() => {});
      }
    },
  };
}
