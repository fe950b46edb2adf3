/**
 * The clip cache with real FFmpeg and real storage (a local root; the GCS emulator): cold fills,
 * warm reuses and copies, corrupt entries are rebuilt, other profiles miss, concurrent builds agree.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Storage as GcsClient } from "@google-cloud/storage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Blueprint } from "../../src/blueprint/types.js";
import { loadConfig } from "../../src/config.js";
import { type CachedInputs, prepareCachedInputs } from "../../src/job/clip-cache.js";
import { silentLogger } from "../../src/log.js";
import { planAssembly } from "../../src/media/assembly.js";
import { renderSteps } from "../../src/media/render.js";
import { planAssemblySteps } from "../../src/media/steps.js";
import { verifyOutput } from "../../src/media/verify.js";
import { createGcsStorage } from "../../src/storage/gcs.js";
import { createLocalStorage } from "../../src/storage/local.js";
import type { FetchedFile, FetchOptions, Storage } from "../../src/storage/storage.js";
import { makeBlueprint } from "../helpers/blueprints.js";
import { makeClip, makeSong } from "../helpers/fixtures.js";
import { EMULATOR_PROJECT_ID, type GcsEmulator, startGcsEmulator } from "../helpers/gcs-emulator.js";
import { frameCount, ssims } from "../helpers/measure.js";
import { render } from "../media/helpers.js";

let root: string;
let work: string;
const config = (extra: Record<string, string> = {}) => loadConfig({ LOCAL_STORAGE_ROOT: ".", ...extra });

/** Counts fetches per key. */
function counting(inner: Storage): Storage & { fetched: string[] } {
  const fetched: string[] = [];
  return {
    ...inner,
    name: inner.name,
    fetched,
    fetch(key: string, dir: string, signal?: AbortSignal, options?: FetchOptions): Promise<FetchedFile> {
      fetched.push(key);
      return inner.fetch(key, dir, signal, options);
    },
  };
}

const MOVES = (): Blueprint =>
  makeBlueprint([
    { video_path: "clips/red.mp4", duration: 1.5 },
    { video_path: "clips/blue.mp4", duration: 1.5, transition_type: "crossfade", trim_start: 0.4 },
    { video_path: "clips/green.mp4", duration: 1.2, transition_type: "fade_black", trim_start: 0.25 },
    // Runs past green's end (2 s): the last frame is held.
    { video_path: "clips/green.mp4", duration: 1, transition_type: "cut", trim_start: 1.5 },
  ]);

interface Assembled {
  cached: CachedInputs;
  file: string;
  /** Re-encoding FFmpeg runs (pieces, without the song). */
  encodes: number;
  copies: number;
}

async function assemble(
  storage: Storage,
  blueprint: Blueprint,
  options: { config?: ReturnType<typeof config> } = {},
) {
  const dir = await mkdtemp(path.join(work, "job-"));
  const signal = new AbortController().signal;
  const cached = await prepareCachedInputs(blueprint, storage, dir, {
    config: options.config ?? config(),
    logger: silentLogger(),
    signal,
  });
  const items = planAssembly(cached.plan, cached.entries);
  const file = path.join(dir, "out.mp4");
  const steps = planAssemblySteps(cached.plan, items, {
    entries: cached.entries,
    audio: cached.audio,
    workDir: path.join(dir, "render"),
    output: file,
  });
  await renderSteps(cached.plan, steps, {
    workDir: path.join(dir, "render"),
    output: file,
    signal,
    logger: silentLogger(),
  });
  const verified = await verifyOutput(file, cached.plan, {});
  // Sub-millisecond timestamp rounding at the joins (mp4 timescales); always well under a frame.
  expect(Math.abs(verified.duration - cached.plan.duration)).toBeLessThan(0.5 / cached.plan.fps);
  return {
    cached,
    file,
    encodes: steps.pieces.filter((s) => s.kind === "piece").length,
    copies: items.filter((i) => i.kind === "copy").length,
  } satisfies Assembled;
}

function cacheFiles(dir: string): string[] {
  const base = path.join(dir, ".clip-cache");
  return readdirSync(base, { recursive: true, encoding: "utf8" }).filter((f) => /\.(mp4|json)$/.test(f));
}

beforeAll(() => {
  work = mkdtempSync(path.join(os.tmpdir(), "clip-cache-"));
  root = path.join(work, "root");
  makeClip(path.join(root, "clips/red.mp4"), "red", 2);
  makeClip(path.join(root, "clips/blue.mp4"), "blue", 2, "240x320", 25);
  makeClip(path.join(root, "clips/green.mp4"), "green", 2);
  makeSong(path.join(root, "songs/song.m4a"), 6);
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe("clip cache, local storage", () => {
  let cold: Assembled;

  it("a cold run fills the cache; a warm run copies the bodies, re-encodes only windows, cut-ins and holds", async () => {
    const storage = counting(createLocalStorage({ root }));
    cold = await assemble(storage, MOVES());
    expect(cold.cached.stats).toMatchObject({ hits: 0, built: 3, rejected: 0, sourcesFetched: 3 });
    // Three entries + sidecars, three probes.
    expect(cacheFiles(root)).toHaveLength(9);
    // Local storage: the cold job renders from the entries it published, in place, not from copies in
    // its temp dir (which Cloud Run would count as memory).
    for (const entry of cold.cached.entries.values()) {
      expect(entry.file.startsWith(`${path.join(root, ".clip-cache")}${path.sep}`)).toBe(true);
    }

    const warmStorage = counting(createLocalStorage({ root }));
    const warm = await assemble(warmStorage, MOVES());
    expect(warm.cached.stats).toMatchObject({ hits: 3, built: 0, rejected: 0, sourcesFetched: 0 });
    expect(warmStorage.fetched.filter((key) => key.startsWith("clips/"))).toEqual([]);
    const total = warm.cached.plan.totalFrames;
    expect(frameCount(warm.file)).toBe(total);
    expect(frameCount(cold.file)).toBe(total);
    // 2 transitions + blue's cut-in (frame 12 → 15) + green's cut-in (7.5 → 15) + green's hold, move 4
    // from frame 45 → keyframe: nothing; at least two bodies copied.
    expect(warm.copies).toBeGreaterThanOrEqual(3);
    const transitions = warm.cached.plan.pieces.filter((p) => p.kind === "transition").length;
    expect(warm.encodes).toBeLessThanOrEqual(transitions + 2 * warm.cached.plan.moves.length - 1);
    expect(warm.encodes).toBeLessThan(warm.cached.plan.pieces.length + 2);
    const s = ssims(cold.file, warm.file);
    expect(s).toHaveLength(total);
    expect(Math.min(...s)).toBeGreaterThanOrEqual(0.98);
  });

  it("records that each entry decoded when built; a lookup says so, and an older sidecar without it is still used", async () => {
    const sidecars = cacheFiles(root).filter(
      (f) => f.endsWith(".json") && !f.startsWith("sources/") && !f.startsWith("hash-memo/"),
    );
    expect(sidecars).toHaveLength(3);
    for (const f of sidecars) {
      expect(JSON.parse(readFileSync(path.join(root, ".clip-cache", f), "utf8"))).toMatchObject({
        decoded: true,
      });
    }
    const older = path.join(root, ".clip-cache", sidecars[0]!);
    const text = readFileSync(older, "utf8");
    const { decoded: _decoded, ...meta } = JSON.parse(text) as Record<string, unknown>;
    writeFileSync(older, JSON.stringify(meta));
    try {
      const dir = await mkdtemp(path.join(work, "job-"));
      const cached = await prepareCachedInputs(MOVES(), createLocalStorage({ root }), dir, {
        config: config(),
        logger: silentLogger(),
        signal: new AbortController().signal,
      });
      expect(cached.stats).toMatchObject({ hits: 3, built: 0, rejected: 0 });
      const verified = [...cached.entries.values()].map((entry) => entry.decodeVerified).sort();
      expect(verified).toEqual([false, true, true]);
      await rm(dir, { recursive: true, force: true });
    } finally {
      writeFileSync(older, text);
    }
  });

  it("an entry that does not decode fails its build like an unusable file; nothing is published", async () => {
    const damagedRoot = path.join(work, "undecodable");
    makeClip(path.join(damagedRoot, "clips/red.mp4"), "red", 1);
    makeSong(path.join(damagedRoot, "songs/song.m4a"), 2);
    // FFmpeg, then the entry it wrote damaged in its largest predicted frame, past the NAL header:
    // it still demuxes and probes as before (sizes and keyframes kept), but does not decode.
    const ffmpegPath = path.join(work, "ffmpeg-damaging");
    writeFileSync(
      ffmpegPath,
      [
        "#!/bin/bash",
        'ffmpeg "$@" || exit $?',
        "for out; do :; done", // the last argument: the file written
        'case "$out" in *.mp4) ;; *) exit 0 ;; esac',
        'line=$(ffprobe -v error -select_streams v:0 -show_entries packet=size,pos,flags -of csv=p=0 "$out" | grep -v K | sort -t, -k1 -n | tail -1)',
        'size=$(echo "$line" | cut -d, -f1); pos=$(echo "$line" | cut -d, -f2)',
        `head -c $((size - 5)) /dev/zero | tr '\\0' '\\377' | dd of="$out" bs=1 seek=$((pos + 5)) conv=notrunc status=none`,
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    const dir = await mkdtemp(path.join(work, "job-"));
    const error = await prepareCachedInputs(
      makeBlueprint([{ video_path: "clips/red.mp4", duration: 1 }]),
      createLocalStorage({ root: damagedRoot }),
      dir,
      {
        config: config({ FFMPEG_PATH: ffmpegPath }),
        logger: silentLogger(),
        signal: new AbortController().signal,
      },
    ).catch((err: unknown) => err);
    expect(error).toMatchObject({ code: "FFMPEG_FAILED" });
    expect((error as Error).message).toMatch(
      /^Normalising clips\/red\.mp4 produced an unusable file \(decoding it reports errors/,
    );
    // Only the source's probe (published before the build) is there: no entry, no sidecar.
    expect(cacheFiles(damagedRoot).filter((f) => !f.startsWith("sources/"))).toEqual([]);
    await rm(dir, { recursive: true, force: true });
  });

  it("local lookups hash an entry through the hash memo: not read again while its file is unchanged", async () => {
    const storage = createLocalStorage({ root, hashMemoPrefix: ".clip-cache" });
    const lookup = async () => {
      const dir = await mkdtemp(path.join(work, "job-"));
      try {
        return await prepareCachedInputs(MOVES(), storage, dir, {
          config: config(),
          logger: silentLogger(),
          signal: new AbortController().signal,
        });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    };
    const first = await lookup();
    expect(first.stats).toMatchObject({ hits: 3, built: 0, rejected: 0 });
    const entry = cacheFiles(root).find((f) => f.endsWith(".mp4") && !f.startsWith("sources"))!;
    const entryKey = `.clip-cache/${entry}`;
    const memoFile = path.join(
      root,
      ".clip-cache/hash-memo",
      `${createHash("sha256").update(entryKey).digest("hex")}.json`,
    );
    const sidecar = JSON.parse(
      readFileSync(path.join(root, entryKey.replace(/\.mp4$/, ".json")), "utf8"),
    ) as {
      sha256: string;
    };
    const memo = JSON.parse(readFileSync(memoFile, "utf8")) as Record<string, unknown>;
    expect(memo).toMatchObject({ key: entryKey, hash: `sha256-${sidecar.sha256}` });
    // Proof that the lookup takes the memo while the file's identity holds: a forged hash is believed
    // (and the entry rejected and rebuilt, under a new inode).
    writeFileSync(memoFile, JSON.stringify({ ...memo, hash: `sha256-${"0".repeat(64)}` }));
    expect((await lookup()).stats).toMatchObject({ hits: 2, rejected: 1, built: 1 });
    // The rebuilt entry is a new file: the forged memo no longer applies, and it is hashed again.
    expect((await lookup()).stats).toMatchObject({ hits: 3, rejected: 0, built: 0 });
    expect(JSON.parse(readFileSync(memoFile, "utf8"))).toMatchObject({ hash: `sha256-${sidecar.sha256}` });
    // An entry damaged in place (same size) changes its ctime: hashed again, rejected.
    const file = path.join(root, entryKey);
    const bytes = readFileSync(file);
    const spoiled = Buffer.from(bytes);
    spoiled.fill(0x41, 2000, 2400);
    writeFileSync(file, spoiled);
    expect((await lookup()).stats).toMatchObject({ hits: 2, rejected: 1, built: 1 });
    expect(readFileSync(file).equals(bytes)).toBe(true);
  });

  it("matches the segment render (CLIP_CACHE=off) frame for frame", async () => {
    const files = Object.fromEntries(
      ["clips/red.mp4", "clips/blue.mp4", "clips/green.mp4"].map((key) => [key, path.join(root, key)]),
    );
    const segments = await render(MOVES(), files, path.join(root, "songs/song.m4a"));
    try {
      expect(frameCount(segments.file)).toBe(cold.cached.plan.totalFrames);
      const s = ssims(segments.file, cold.file);
      expect(Math.min(...s)).toBeGreaterThanOrEqual(0.98);
    } finally {
      rmSync(segments.dir, { recursive: true, force: true });
    }
  });

  it("detects a corrupted entry (truncated, or garbage) and rebuilds it", async () => {
    const entries = cacheFiles(root).filter((f) => f.endsWith(".mp4") && !f.startsWith("sources"));
    const truncated = path.join(root, ".clip-cache", entries[0]!);
    const bytes = readFileSync(truncated);
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const garbage = path.join(root, ".clip-cache", entries[1]!);
    const original = readFileSync(garbage);
    const spoiled = Buffer.from(original);
    spoiled.fill(0x41, 2000, 2400);
    writeFileSync(garbage, spoiled);

    const again = await assemble(createLocalStorage({ root }), MOVES());
    expect(again.cached.stats).toMatchObject({ hits: 1, rejected: 2, built: 2 });
    expect(Math.min(...ssims(cold.file, again.file))).toBeGreaterThanOrEqual(0.98);
    // Rebuilt and republished: the next run hits everything.
    const next = await assemble(createLocalStorage({ root }), MOVES());
    expect(next.cached.stats).toMatchObject({ hits: 3, rejected: 0, built: 0 });
    expect(readFileSync(garbage).equals(original)).toBe(true);
  });

  it("misses for another profile (frame rate, size) and keeps both", async () => {
    const at25 = MOVES();
    at25.output_config.frame_rate = 25;
    const r25 = await assemble(createLocalStorage({ root }), at25);
    expect(r25.cached.stats).toMatchObject({ hits: 0, built: 3 });
    expect(frameCount(r25.file)).toBe(r25.cached.plan.totalFrames);
    const small = MOVES();
    small.output_config.resolution = { width: 160, height: 120 };
    const rSmall = await assemble(createLocalStorage({ root }), small);
    expect(rSmall.cached.stats).toMatchObject({ hits: 0, built: 3 });
    const back = await assemble(createLocalStorage({ root }), MOVES());
    expect(back.cached.stats).toMatchObject({ hits: 3, built: 0 });
  });

  it("two concurrent cold builds of the same entries both end with valid files", async () => {
    const fresh = path.join(work, "fresh");
    for (const key of ["clips/red.mp4", "clips/green.mp4", "songs/song.m4a"]) {
      execFileSync("sh", [
        "-c",
        'mkdir -p "$(dirname "$2")" && cp "$1" "$2"',
        "sh",
        path.join(root, key),
        path.join(fresh, key),
      ]);
    }
    const blueprint = makeBlueprint([
      { video_path: "clips/red.mp4", duration: 1 },
      { video_path: "clips/green.mp4", duration: 1, transition_type: "crossfade" },
    ]);
    const [a, b] = await Promise.all([
      assemble(createLocalStorage({ root: fresh }), blueprint),
      assemble(createLocalStorage({ root: fresh }), blueprint),
    ]);
    expect(a.cached.stats.built + b.cached.stats.built).toBeGreaterThanOrEqual(2);
    expect(frameCount(a.file)).toBe(60);
    expect(frameCount(b.file)).toBe(60);
    const c = await assemble(createLocalStorage({ root: fresh }), blueprint);
    expect(c.cached.stats).toMatchObject({ hits: 2, rejected: 0, built: 0 });
    // No temporary objects left behind.
    expect(
      readdirSync(path.join(fresh, ".clip-cache"), { recursive: true, encoding: "utf8" }).filter((f) =>
        f.endsWith(".tmp"),
      ),
    ).toEqual([]);
  });
});

/** A storage whose `after` runs once `key` has been described (the source is replaced in between). */
function swapping(inner: Storage, key: string, after: () => Promise<void>): Storage {
  return {
    ...inner,
    name: inner.name,
    async describe(k: string, signal?: AbortSignal) {
      const description = await inner.describe(k, signal);
      if (k === key) await after();
      return description;
    },
  };
}

const SWAP_MOVES = (): Blueprint => makeBlueprint([{ video_path: "clips/swap.mp4", duration: 1 }]);

/** Names of the cache's entries and probes (hash-named files) under `prefix`. */
function hashNames(dir: string, prefix: string): string[] {
  const base = path.join(dir, prefix);
  return existsSync(base)
    ? readdirSync(base, { recursive: true, encoding: "utf8" }).map((f) => path.basename(f))
    : [];
}

describe("clip cache: a source replaced between hash and build", () => {
  it("local: is detected (retryable STORAGE_ERROR); nothing is cached under the old hash", async () => {
    const swapRoot = path.join(work, "swap-root");
    makeClip(path.join(swapRoot, "clips/swap.mp4"), "red", 1);
    makeClip(path.join(work, "swap-magenta.mp4"), "magenta", 1);
    makeSong(path.join(swapRoot, "songs/song.m4a"), 2);
    const storage = createLocalStorage({ root: swapRoot });
    const oldHash = (await storage.describe("clips/swap.mp4")).hash.replace(/^sha256-/, "");
    const swapped = swapping(storage, "clips/swap.mp4", async () => {
      copyFileSync(path.join(work, "swap-magenta.mp4"), path.join(swapRoot, "clips/swap.mp4"));
    });
    const dir = await mkdtemp(path.join(work, "job-"));
    const error = await prepareCachedInputs(SWAP_MOVES(), swapped, dir, {
      config: config(),
      logger: silentLogger(),
      signal: new AbortController().signal,
    }).catch((err: unknown) => err);
    expect(error).toMatchObject({ code: "STORAGE_ERROR", retryable: true });
    expect((error as Error).message).toContain("Clip clips/swap.mp4 changed while the job was reading it");
    expect(hashNames(swapRoot, ".clip-cache").filter((name) => name.includes(oldHash))).toEqual([]);
    // The next run normalises the new bytes under their own hash.
    const again = await prepareCachedInputs(SWAP_MOVES(), storage, dir, {
      config: config(),
      logger: silentLogger(),
      signal: new AbortController().signal,
    });
    expect(again.stats).toMatchObject({ built: 1 });
    expect(hashNames(swapRoot, ".clip-cache").filter((name) => name.includes(oldHash))).toEqual([]);
    await rm(dir, { recursive: true, force: true });
  });
});

describe("clip cache, GCS (emulator)", () => {
  let emulator: GcsEmulator;
  const BUCKET = "clip-cache-test";

  beforeAll(async () => {
    emulator = await startGcsEmulator();
    process.env["STORAGE_EMULATOR_HOST"] = emulator.host;
    const bucket = new GcsClient({ projectId: EMULATOR_PROJECT_ID }).bucket(BUCKET);
    for (const key of ["clips/red.mp4", "clips/blue.mp4", "clips/green.mp4", "songs/song.m4a"]) {
      await bucket.upload(path.join(root, key), { destination: key });
    }
  });
  afterAll(async () => {
    await emulator?.stop();
  });

  it("caches into the bucket; a warm run downloads no source and deletes none of its own late", async () => {
    const gcs = () =>
      counting(
        createGcsStorage({
          bucket: BUCKET,
          projectId: EMULATOR_PROJECT_ID,
          logger: silentLogger(),
          retry: { attempts: 1 },
        }),
      );
    const coldStorage = gcs();
    const cold = await assemble(coldStorage, MOVES());
    expect(cold.cached.stats).toMatchObject({ built: 3, sourcesFetched: 3 });
    // Sources were deleted from the temp dir once normalised.
    const media = path.join(path.dirname(cold.file), "media");
    expect(readdirSync(media).filter((f) => !f.endsWith(".m4a"))).toEqual([]);
    const [objects] = await new GcsClient({ projectId: EMULATOR_PROJECT_ID })
      .bucket(BUCKET)
      .getFiles({ prefix: ".clip-cache/" });
    expect(objects).toHaveLength(9);
    // GCS: the entries it renders from are its own local copies.
    for (const entry of cold.cached.entries.values()) {
      expect(entry.file.startsWith(`${path.dirname(cold.file)}${path.sep}`)).toBe(true);
    }

    const warmStorage = gcs();
    const warm = await assemble(warmStorage, MOVES());
    expect(warm.cached.stats).toMatchObject({ hits: 3, built: 0, sourcesFetched: 0 });
    expect(warmStorage.fetched.filter((key) => key.startsWith("clips/"))).toEqual([]);
    expect(frameCount(warm.file)).toBe(warm.cached.plan.totalFrames);
    expect(Math.min(...ssims(cold.file, warm.file))).toBeGreaterThanOrEqual(0.98);
    await rm(path.dirname(cold.file), { recursive: true, force: true });
  });

  it("an object overwritten between hash and download is detected; nothing is cached under the old hash", async () => {
    const bucket = new GcsClient({ projectId: EMULATOR_PROJECT_ID }).bucket(BUCKET);
    makeClip(path.join(work, "gcs-swap-red.mp4"), "red", 1, "320x240", 24);
    makeClip(path.join(work, "gcs-swap-magenta.mp4"), "magenta", 1, "320x240", 24);
    await bucket.upload(path.join(work, "gcs-swap-red.mp4"), { destination: "clips/swap.mp4" });
    const storage = createGcsStorage({
      bucket: BUCKET,
      projectId: EMULATOR_PROJECT_ID,
      logger: silentLogger(),
      retry: { attempts: 1 },
    });
    const oldHash = (await storage.describe("clips/swap.mp4")).hash;
    const swapped = swapping(storage, "clips/swap.mp4", async () => {
      await bucket.upload(path.join(work, "gcs-swap-magenta.mp4"), { destination: "clips/swap.mp4" });
    });
    const dir = await mkdtemp(path.join(work, "job-"));
    const error = await prepareCachedInputs(SWAP_MOVES(), swapped, dir, {
      config: config({ CLIP_CACHE_PREFIX: ".swap-cache" }),
      logger: silentLogger(),
      signal: new AbortController().signal,
    }).catch((err: unknown) => err);
    expect(error).toMatchObject({ code: "STORAGE_ERROR", retryable: true });
    const [objects] = await bucket.getFiles({ prefix: ".swap-cache/" });
    expect(objects.filter((o) => o.name.includes(oldHash))).toEqual([]);
    await rm(dir, { recursive: true, force: true });
  });
});
