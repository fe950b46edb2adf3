/**
 * `warm-cache` with real FFmpeg and real storage (a local root; the GCS emulator): two shards split a
 * library without overlap and together cover it, a job then finds every clip cached, a re-run builds
 * nothing, a corrupt entry is rebuilt; the CLI's `--shards`, exit codes and summary.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Storage as GcsClient } from "@google-cloud/storage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { prepareCachedInputs } from "../../src/job/clip-cache.js";
import { shardOf, type WarmSummary, warmCache } from "../../src/job/warm-cache.js";
import { parseWarmCli, shardFromEnv } from "../../src/job/warm-cache-cli.js";
import { silentLogger } from "../../src/log.js";
import { createGcsStorage } from "../../src/storage/gcs.js";
import { createLocalStorage } from "../../src/storage/local.js";
import type { Storage } from "../../src/storage/storage.js";
import { makeBlueprint } from "../helpers/blueprints.js";
import { runCli } from "../helpers/cli.js";
import { makeClip, makeSong } from "../helpers/fixtures.js";
import { EMULATOR_PROJECT_ID, type GcsEmulator, startGcsEmulator } from "../helpers/gcs-emulator.js";

let work: string;
let root: string;
const CLIPS = ["lib/a.mp4", "lib/b.mp4", "lib/c.mp4", "lib/d.mov", "lib/sub/e.mp4", "lib/sub/f.mp4"];
const COLOURS = ["red", "blue", "green", "yellow", "cyan", "magenta"];
const config = (extra: Record<string, string> = {}) =>
  loadConfig({ LOCAL_STORAGE_ROOT: root, VIDEO_PRESET: "ultrafast", ...extra });

async function warm(storage: Storage, index: number, count: number, extra: Record<string, string> = {}) {
  const built: string[] = [];
  const logger = silentLogger();
  const summary = await warmCache(
    storage,
    config(extra),
    { prefix: "lib", shard: { index, count }, jobs: 2 },
    { logger, signal: new AbortController().signal, tempRoot: work },
  );
  return { summary, built };
}

/** A job over every clip of the library at the same profile: how many entries it finds. */
async function jobStats(storage: Storage, extra: Record<string, string> = {}) {
  const dir = await mkdtemp(path.join(work, "job-"));
  try {
    const blueprint = makeBlueprint(
      CLIPS.map((video_path) => ({ video_path, duration: 1 })),
      { preset: "ultrafast" },
    );
    const cached = await prepareCachedInputs(blueprint, storage, dir, {
      config: config(extra),
      logger: silentLogger(),
      signal: new AbortController().signal,
    });
    return cached.stats;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function entryFiles(base: string, prefix = ".clip-cache"): string[] {
  return readdirSync(path.join(base, prefix), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".mp4"))
    .sort();
}

/**
 * Overwrites the largest predicted frame of a file past its NAL header with 0xff bytes: sizes and
 * keyframes kept, so it demuxes and probes as before, but it does not decode.
 */
function damageLargestPacket(file: string): void {
  const lines = execFileSync(
    "ffprobe",
    [
      ...["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=size,pos,flags"],
      ...["-of", "csv=p=0", file],
    ],
    { encoding: "utf8" },
  ).trim();
  const [size, pos] = lines
    .split("\n")
    .filter((line) => !line.includes("K"))
    .map((line) => line.split(",").map(Number) as [number, number])
    .sort((a, b) => b[0] - a[0])[0]!;
  const fd = openSync(file, "r+");
  try {
    writeSync(fd, Buffer.alloc(size - 5, 0xff), 0, size - 5, pos + 5);
  } finally {
    closeSync(fd);
  }
}

const readSidecar = (entry: string) =>
  JSON.parse(
    readFileSync(path.join(root, ".clip-cache", entry.replace(/\.mp4$/, ".json")), "utf8"),
  ) as Record<string, unknown>;
const writeSidecar = (entry: string, meta: Record<string, unknown>) =>
  writeFileSync(path.join(root, ".clip-cache", entry.replace(/\.mp4$/, ".json")), JSON.stringify(meta));

beforeAll(() => {
  work = mkdtempSync(path.join(os.tmpdir(), "warm-cache-"));
  root = path.join(work, "root");
  for (const [i, key] of CLIPS.entries()) makeClip(path.join(root, key), COLOURS[i]!, 1.5);
  makeSong(path.join(root, "songs/song.m4a"), 8);
  // Not clips: skipped.
  writeFileSync(path.join(root, "lib/notes.txt"), "not a clip");
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe("shards", () => {
  it("are a function of the key alone: disjoint, covering, and stable", () => {
    const keys = Array.from({ length: 200 }, (_, i) => `library/clip_${i}.mp4`);
    for (const count of [1, 2, 3, 7]) {
      const shares = Array.from({ length: count }, (_, index) =>
        keys.filter((k) => shardOf(k, count) === index),
      );
      expect(shares.flat().sort()).toEqual([...keys].sort());
      for (const share of shares) expect(share.length).toBeGreaterThan(keys.length / count / 2);
    }
    expect(shardFromEnv(undefined, undefined)).toEqual({ index: 0, count: 1 });
    expect(shardFromEnv("2", "3")).toEqual({ index: 2, count: 3 });
    expect(() => shardFromEnv("3", "3")).toThrow(/CLOUD_RUN_TASK_INDEX/);
    expect(() => parseWarmCli([])).toThrow(/--prefix/);
    expect(() => parseWarmCli(["--prefix", "../up"])).toThrow(/'\.\.' segment/);
    expect(parseWarmCli(["--prefix", "lib", "--fps", "25"])).toMatchObject({ prefix: "lib", fps: 25 });
  });
});

describe("warm-cache, local storage", () => {
  let shares: WarmSummary[];

  it("two shards split the library without overlap and together cover it; a job then finds every clip cached", async () => {
    const storage = createLocalStorage({ root });
    const first = await warm(storage, 0, 2);
    const afterFirst = entryFiles(root);
    const second = await warm(storage, 1, 2);
    shares = [first.summary, second.summary];
    for (const s of shares)
      expect(s).toMatchObject({ clips: CLIPS.length, verified: 0, rejected: 0, failed: 0 });
    expect(first.summary.share + second.summary.share).toBe(CLIPS.length);
    expect(first.summary.built).toBe(first.summary.share);
    expect(second.summary.built).toBe(second.summary.share);
    expect(first.summary.share).toBeGreaterThan(0);
    expect(second.summary.share).toBeGreaterThan(0);
    const all = entryFiles(root);
    expect(afterFirst).toHaveLength(first.summary.share);
    // The second shard added only new entries: no overlap.
    expect(all).toHaveLength(CLIPS.length);
    expect(all.filter((f) => afterFirst.includes(f))).toEqual(afterFirst);

    const stats = await jobStats(storage);
    expect(stats).toMatchObject({ hits: CLIPS.length, built: 0, rejected: 0, sourcesFetched: 0 });
  });

  it("a re-run builds nothing", async () => {
    const storage = createLocalStorage({ root });
    const { summary } = await warm(storage, 0, 1);
    expect(summary).toMatchObject({
      share: CLIPS.length,
      verified: CLIPS.length,
      built: 0,
      rejected: 0,
      failed: 0,
    });
  });

  it("a corrupt entry is rebuilt", async () => {
    const storage = createLocalStorage({ root });
    const victim = entryFiles(root)[0]!;
    writeFileSync(path.join(root, ".clip-cache", victim), "garbage");
    const { summary } = await warm(storage, 0, 1);
    expect(summary).toMatchObject({ verified: CLIPS.length - 1, built: 1, rejected: 1, failed: 0 });
    expect(await jobStats(storage)).toMatchObject({ hits: CLIPS.length, built: 0, rejected: 0 });
  });

  it("records that each entry decoded; an older sidecar is decoded and upgraded; one that does not decode is rebuilt", async () => {
    const storage = createLocalStorage({ root });
    const [older, undecodable] = entryFiles(root);
    for (const entry of entryFiles(root)) expect(readSidecar(entry)).toMatchObject({ decoded: true });

    // A sidecar from before decodes (and probes) were recorded: still a hit, and upgraded by warm-cache.
    const { decoded: _decoded, packetHashes, extradataHash, ...olderMeta } = readSidecar(older!);
    writeSidecar(older!, olderMeta);
    // An entry whose bytes still match its (older) sidecar and demux cleanly, but do not decode.
    const file = path.join(root, ".clip-cache", undecodable!);
    damageLargestPacket(file);
    const { decoded: _d, packetHashes: _p, extradataHash: _e, ...badMeta } = readSidecar(undecodable!);
    writeSidecar(undecodable!, {
      ...badMeta,
      sha256: createHash("sha256").update(readFileSync(file)).digest("hex"),
    });

    const { summary } = await warm(storage, 0, 1);
    expect(summary).toMatchObject({ verified: CLIPS.length - 1, built: 1, rejected: 1, failed: 0 });
    expect(readSidecar(older!)).toEqual({ ...olderMeta, packetHashes, extradataHash, decoded: true });
    expect(readSidecar(undecodable!)).toMatchObject({ decoded: true });
    execFileSync("ffmpeg", ["-v", "error", "-xerror", "-i", file, "-f", "null", "-"]);
    expect(await jobStats(storage)).toMatchObject({ hits: CLIPS.length, built: 0, rejected: 0 });
  });

  it("another profile (--fps) gets its own entries", async () => {
    const storage = createLocalStorage({ root });
    const summary = await warmCache(
      storage,
      config(),
      { prefix: "lib/sub", shard: { index: 0, count: 1 }, fps: 25, jobs: 2 },
      { logger: silentLogger(), signal: new AbortController().signal, tempRoot: work },
    );
    expect(summary).toMatchObject({ share: 2, built: 2, verified: 0 });
    expect(summary.profiles).toHaveLength(1);
    expect(summary.profiles[0]).toMatch(/^320x240-25_1-/);
  });
});

describe("warm-cache CLI", () => {
  let cliRoot: string;
  // The CLI in dist/ is built once by the global setup (rebuilding here raced other files' CLI runs).
  beforeAll(() => {
    cliRoot = path.join(work, "cli-root");
    for (const [i, key] of CLIPS.slice(0, 4).entries()) makeClip(path.join(cliRoot, key), COLOURS[i]!, 1);
  });
  const env = (extra: Record<string, string> = {}) => ({
    LOCAL_STORAGE_ROOT: cliRoot,
    VIDEO_PRESET: "ultrafast",
    LOG_LEVEL: "info",
    TMPDIR: work,
    ...extra,
  });
  const summaries = (logs: Array<Record<string, unknown>>) =>
    logs.filter(
      (l) => typeof l["message"] === "string" && (l["message"] as string).startsWith("Warm cache done"),
    );

  it("--shards 2 warms the library in two processes (exit 0); a re-run builds nothing", async () => {
    const run = await runCli({ env: env(), args: ["warm-cache", "--prefix", "lib", "--shards", "2"] });
    expect(run.code, run.stderr).toBe(0);
    const done = summaries(run.logs);
    expect(done).toHaveLength(2);
    expect(done.reduce((sum, l) => sum + Number(l["built"]), 0)).toBe(4);
    expect(new Set(done.map((l) => l["task_index"]))).toEqual(new Set([0, 1]));
    expect(entryFiles(cliRoot)).toHaveLength(4);

    const again = await runCli({ env: env(), args: ["warm-cache", "--prefix", "lib"] });
    expect(again.code, again.stderr).toBe(0);
    expect(summaries(again.logs)[0]).toMatchObject({ built: 0, verified: 4, rejected: 0, failed: 0 });
    // Nothing left in the temp dir.
    expect(readdirSync(work).filter((f) => f.startsWith("warm-cache-"))).toEqual([]);
  });

  it("exits 1 when a clip cannot be normalised (the others are still cached), 2 on bad arguments", async () => {
    writeFileSync(path.join(cliRoot, "lib/broken.mp4"), "this is not a video");
    try {
      const run = await runCli({ env: env(), args: ["warm-cache", "--prefix", "lib"] });
      expect(run.code).toBe(1);
      expect(summaries(run.logs)[0]).toMatchObject({ verified: 4, failed: 1 });
      expect(run.logs.some((l) => String(l["message"]).includes("lib/broken.mp4 failed"))).toBe(true);
    } finally {
      rmSync(path.join(cliRoot, "lib/broken.mp4"));
    }
    for (const args of [
      ["warm-cache"],
      ["warm-cache", "--prefix", "lib", "--resolution", "big"],
      ["warm-cache", "--prefix", "/etc"],
    ]) {
      const bad = await runCli({ env: env(), args });
      expect(bad.code, args.join(" ")).toBe(2);
    }
    const codec = await runCli({
      env: env({ VIDEO_CODEC: "libx265" }),
      args: ["warm-cache", "--prefix", "lib"],
    });
    expect(codec.code).toBe(2);
    expect(codec.stderr).toContain("libx264 only");
    // No database needed on Cloud Run for this mode.
    const cloudRun = await runCli({
      env: env({ CLOUD_RUN_JOB: "warm", CLOUD_RUN_TASK_INDEX: "0", CLOUD_RUN_TASK_COUNT: "1" }),
      args: ["warm-cache", "--prefix", "lib"],
    });
    expect(cloudRun.code, cloudRun.stderr).toBe(0);
  });
});

describe("warm-cache, GCS (emulator)", () => {
  let emulator: GcsEmulator;
  const BUCKET = "warm-cache-test";
  const gcs = () =>
    createGcsStorage({
      bucket: BUCKET,
      projectId: EMULATOR_PROJECT_ID,
      logger: silentLogger(),
      retry: { attempts: 1 },
    });
  const gcsConfig = { GCS_BUCKET_NAME: BUCKET };

  beforeAll(async () => {
    emulator = await startGcsEmulator();
    process.env["STORAGE_EMULATOR_HOST"] = emulator.host;
    const bucket = new GcsClient({ projectId: EMULATOR_PROJECT_ID }).bucket(BUCKET);
    for (const key of [...CLIPS, "songs/song.m4a", "lib/notes.txt"]) {
      await bucket.upload(path.join(root, key), { destination: key });
    }
  });
  afterAll(async () => {
    await emulator?.stop();
  });

  it("two shards cover the bucket's library without overlap; a re-run builds nothing; a corrupt entry is rebuilt", async () => {
    const bucket = new GcsClient({ projectId: EMULATOR_PROJECT_ID }).bucket(BUCKET);
    const entries = async () =>
      (await bucket.getFiles({ prefix: ".clip-cache/" }))[0]
        .map((f) => f.name)
        .filter((n) => n.endsWith(".mp4"));
    const first = await warm(gcs(), 0, 2, gcsConfig);
    const afterFirst = await entries();
    const second = await warm(gcs(), 1, 2, gcsConfig);
    expect(first.summary.share + second.summary.share).toBe(CLIPS.length);
    expect(first.summary.built + second.summary.built).toBe(CLIPS.length);
    expect(afterFirst).toHaveLength(first.summary.built);
    expect(await entries()).toHaveLength(CLIPS.length);
    expect(await jobStats(gcs(), gcsConfig)).toMatchObject({
      hits: CLIPS.length,
      built: 0,
      sourcesFetched: 0,
    });

    const again = await warm(gcs(), 0, 1, gcsConfig);
    expect(again.summary).toMatchObject({ verified: CLIPS.length, built: 0, rejected: 0, failed: 0 });

    const victim = (await entries())[0]!;
    await bucket.file(victim).save(Buffer.from("garbage"));
    const repaired = await warm(gcs(), 0, 1, gcsConfig);
    expect(repaired.summary).toMatchObject({ verified: CLIPS.length - 1, built: 1, rejected: 1, failed: 0 });
    // Nothing left in the temp dir.
    expect(readdirSync(work).filter((f) => f.startsWith("warm-cache-"))).toEqual([]);
  });
});
