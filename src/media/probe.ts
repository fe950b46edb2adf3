/**
 * Runs ffprobe on a local input and returns its `MediaInfo` (parsed by the pure `media-info.ts`).
 */
import { open, stat } from "node:fs/promises";
import { JobError } from "../errors.js";
import { MAX_PIXELS, MAX_SIDE, pinnedInput, SNIFF_BYTES, sniffContainer } from "./containers.js";
import { runFfprobeJson } from "./ffmpeg.js";
import { type MediaInfo, type MediaKind, parseProbe } from "./media-info.js";

function describe(kind: MediaKind | undefined, key: string): string {
  if (kind === "clip") return `Clip ${key} is not a readable video`;
  if (kind === "song") return `Song ${key} is not a readable audio file`;
  return `${key} is not a readable video or audio file`;
}

/** Reads a file's first bytes and picks its demuxer from the allowlist (containers.ts). */
export async function sniffFile(file: string): Promise<ReturnType<typeof sniffContainer>> {
  const handle = await open(file, "r");
  try {
    const buffer = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, SNIFF_BYTES, 0);
    return sniffContainer(buffer.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

/**
 * Probes a local file fetched from storage key `key`. Unreadable, empty or stream-less files (and,
 * with `kind`, a clip without video or a song without audio) fail with MEDIA_INVALID naming the key,
 * as do files that are not in an allowed plain container (playlists, manifests, concat scripts,
 * images: containers.ts) and pictures larger than the job decodes. ffprobe opens the file with the
 * sniffed demuxer and local files only, so the probe itself follows no references.
 */
export async function probeMedia(
  file: string,
  key: string,
  options: { ffprobePath?: string; signal?: AbortSignal; kind?: MediaKind } = {},
): Promise<MediaInfo> {
  const size = await stat(file).then(
    (s) => s.size,
    () => -1,
  );
  if (size <= 0) {
    throw new JobError(
      `${describe(options.kind, key)}: ${size === 0 ? "the file is empty" : "the file is missing"}`,
      {
        code: "MEDIA_INVALID",
      },
    );
  }
  const sniffed = await sniffFile(file);
  if ("refused" in sniffed) {
    throw new JobError(`${describe(options.kind, key)}: ${sniffed.refused}`, {
      code: "MEDIA_INVALID",
    });
  }
  const result = await runFfprobeJson(
    ["-show_format", "-show_streams", ...pinnedInput(file, sniffed.demuxer)],
    options,
  );
  if (!result.ok) {
    throw new JobError(`${describe(options.kind, key)}: ${result.reason}`, { code: "MEDIA_INVALID" });
  }
  if (/exceeds specified max pixel count/.test(result.stderr)) {
    throw new JobError(
      `${describe(options.kind, key)}: its picture is larger than the job decodes (at most ${MAX_SIDE} pixels a side and ${MAX_PIXELS / 1e6} megapixels)`,
      { code: "MEDIA_INVALID" },
    );
  }
  let info: MediaInfo;
  try {
    info = parseProbe(result.json, key, sniffed.demuxer);
  } catch (err) {
    if (err instanceof JobError && options.kind !== undefined) {
      throw new JobError(
        `${describe(options.kind, key)}: ${err.message.slice(err.message.indexOf(": ") + 2)}`,
        {
          code: "MEDIA_INVALID",
        },
      );
    }
    throw err;
  }
  if (options.kind === "clip" && !info.hasVideo) {
    throw new JobError(`${describe("clip", key)}: it has no video stream`, { code: "MEDIA_INVALID" });
  }
  if (options.kind === "song" && !info.hasAudio) {
    throw new JobError(`Song ${key} has no audio stream`, { code: "MEDIA_INVALID" });
  }
  return info;
}
