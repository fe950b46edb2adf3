/**
 * The GCS driver against the firebase-tools Cloud Storage emulator, with the real
 * @google-cloud/storage client. Every request goes through a fault proxy (faults off unless a test
 * injects them), so the tests can count requests and script failures.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Bucket } from "@google-cloud/storage";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createGcsStorage, type GcsStorageOptions } from "../../src/storage/gcs.js";
import { contentTypeFor } from "../../src/storage/keys.js";
import { type FaultProxy, startFaultProxy } from "../helpers/fault-proxy.js";
import { EMULATOR_PROJECT_ID, type GcsEmulator, startGcsEmulator } from "../helpers/gcs-emulator.js";
import { captureLogs } from "../helpers/log-capture.js";
import { expectJobError, sha256, testStorageContract } from "./contract.js";

const BUCKET = "video-job-test";
let emulator: GcsEmulator;
let proxy: FaultProxy;
let direct: Bucket;

beforeAll(async () => {
  emulator = await startGcsEmulator();
  proxy = await startFaultProxy({ target: emulator.host });
  // Read by the SDK when a client is constructed: every client in this file talks to the proxy.
  process.env["STORAGE_EMULATOR_HOST"] = proxy.host;
  const { Storage } = await import("@google-cloud/storage");
  direct = new Storage({ projectId: EMULATOR_PROJECT_ID, retryOptions: { autoRetry: false } }).bucket(BUCKET);
  console.info(`GCS emulator started in ${emulator.startMs} ms`);
});
afterAll(async () => {
  await proxy?.stop();
  await emulator?.stop();
});

const put = async (key: string, data: Uint8Array) => {
  await direct.file(key).save(Buffer.from(data), { resumable: false });
};

function gcs(options: Partial<GcsStorageOptions> = {}) {
  const log = captureLogs();
  const storage = createGcsStorage({
    bucket: BUCKET,
    projectId: EMULATOR_PROJECT_ID,
    logger: log.logger,
    retry: { minDelayMs: 20 },
    ...options,
  });
  return { storage, lines: log.lines };
}

testStorageContract({
  name: "gcs (emulator)",
  residence: "copy",
  async create() {
    return {
      storage: gcs().storage,
      put,
      async get(key) {
        try {
          return (await direct.file(key).download())[0];
        } catch (error) {
          if ((error as { code?: unknown }).code === 404) return undefined;
          throw error;
        }
      },
      list: async (prefix) => (await direct.getFiles({ prefix }))[0].map((file) => file.name).sort(),
      privatePaths: [os.tmpdir() + path.sep],
      expectedUrl: (key) => `gs://${BUCKET}/${key}`,
    };
  },
  aliasOf: (key) => `gs://${BUCKET}/${key}`,
});

describe("gcs storage: uploads and retries", () => {
  let work: string;
  let n = 0;
  const key = (name: string) => `gcs-${++n}/${name}`;
  const requestsFor = (k: string) => proxy.requests.filter((r) => r.url.includes(encodeURIComponent(k)));
  const downloads = (k: string) =>
    proxy.requests.filter(
      (r) => r.method === "GET" && r.url.includes(encodeURIComponent(k)) && r.url.includes("alt=media"),
    );

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), "storage-gcs-"));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));
  beforeEach(() => proxy.reset());

  it("uploads with the content type and the task metadata", async () => {
    const { storage } = gcs();
    const k = key("output/choreography.mov");
    const file = path.join(work, "upload.mov");
    await writeFile(file, randomBytes(4096));
    await storage.upload(file, k, {
      contentType: contentTypeFor(k),
      metadata: { task_id: "task-42", blueprint_sha256: "ab".repeat(32) },
    });
    const [metadata] = await direct.file(k).getMetadata();
    expect(metadata.contentType).toBe("video/quicktime");
    expect(metadata.metadata).toMatchObject({ task_id: "task-42", blueprint_sha256: "ab".repeat(32) });
  });

  it("retries two 503s and succeeds on the third attempt, logging each retry", async () => {
    const { storage, lines } = gcs();
    const k = key("clips/flaky.mp4");
    const data = randomBytes(8192);
    await put(k, data);
    proxy.reset();
    proxy.inject({ kind: "status", status: 503, times: 2, match: { method: "GET", path: "alt=media" } });
    const started = performance.now();
    const fetched = await storage.fetch(k, work);
    const elapsed = performance.now() - started;
    expect(sha256(await readFile(fetched.path))).toBe(sha256(data));
    expect(downloads(k).map((r) => r.outcome)).toEqual([503, 503, 200]);
    const retries = lines.filter((line) => line.severity === "WARNING");
    expect(retries.map((line) => [line["key"], line["attempt"]])).toEqual([
      [k, 1],
      [k, 2],
    ]);
    // minDelayMs 20, factor 2, jitter ×1–2: 20–40 ms then 40–80 ms.
    expect(elapsed).toBeGreaterThanOrEqual(55);
    console.info(`two 503s then success: ${Math.round(elapsed)} ms`);
  });

  it("fails at once on a 404, naming the key, after one request", async () => {
    const { storage, lines } = gcs();
    const k = key("clips/gone.mp4");
    const error = await expectJobError(storage.fetch(k, work));
    expect(error.code).toBe("STORAGE_NOT_FOUND");
    expect(error.message).toBe(`Media file not found: ${k}`);
    expect(requestsFor(k)).toHaveLength(1);
    expect(lines.filter((line) => line.severity === "WARNING")).toEqual([]);
  });

  it.each([
    [403, "STORAGE_DENIED"],
    [401, "STORAGE_DENIED"],
    [400, "STORAGE_ERROR"],
    [404, "STORAGE_NOT_FOUND"],
  ] as const)("fails at once on an injected %i (%s)", async (status, code) => {
    const { storage } = gcs();
    const k = key("clips/forbidden.mp4");
    await put(k, Buffer.from("x"));
    proxy.reset();
    proxy.inject({ kind: "status", status, times: 5, match: { path: "alt=media" } });
    const error = await expectJobError(storage.fetch(k, work));
    expect(error.code).toBe(code);
    expect(error.retryable).toBe(false);
    expect(error.message).toContain(k);
    expect(downloads(k)).toHaveLength(1);
  });

  it("retries a connection reset mid-download and leaves an intact file, no partial one", async () => {
    const { storage, lines } = gcs();
    const k = key("clips/reset.mp4");
    const data = randomBytes(256 * 1024);
    await put(k, data);
    proxy.reset();
    proxy.inject({ kind: "reset", afterBytes: 64 * 1024, times: 1, match: { path: "alt=media" } });
    const dir = await mkdtemp(path.join(work, "reset-"));
    const fetched = await storage.fetch(k, dir);
    expect(downloads(k).map((r) => r.outcome)).toEqual(["reset", 200]);
    expect(fetched.bytes).toBe(data.length);
    expect(sha256(await readFile(fetched.path))).toBe(sha256(data));
    expect(await readdir(dir)).toEqual([path.basename(fetched.path)]);
    expect(lines.filter((line) => line.severity === "WARNING")).toHaveLength(1);
  });

  it("validates the checksum: corrupted bytes are detected and downloaded again", async () => {
    const { storage, lines } = gcs();
    const k = key("clips/corrupt.mp4");
    const data = randomBytes(16 * 1024);
    await put(k, data);
    proxy.reset();
    proxy.inject({ kind: "corrupt", times: 1, match: { path: "alt=media" } });
    const fetched = await storage.fetch(k, work, undefined, { sha256: true });
    expect(sha256(await readFile(fetched.path))).toBe(sha256(data));
    // The hash taken while downloading is the good attempt's, not the corrupted one's.
    expect(fetched.sha256).toBe(sha256(data));
    expect(downloads(k)).toHaveLength(2);
    expect(lines.find((line) => line.severity === "WARNING")?.["reason"]).toBe("CONTENT_DOWNLOAD_MISMATCH");
  });

  it("downloads with one request, checked against the served generation's headers; the hash is describe's", async () => {
    const { storage } = gcs();
    const k = key("clips/one-request.mp4");
    const data = randomBytes(200 * 1024 + 3);
    await put(k, data);
    const described = await storage.describe(k);
    proxy.reset();
    const fetched = await storage.fetch(k, await mkdtemp(path.join(work, "one-")), undefined, {
      sha256: true,
    });
    expect(requestsFor(k).map((r) => r.url.includes("alt=media"))).toEqual([true]);
    expect(fetched.hash).toBe(described.hash);
    expect(fetched.sha256).toBe(sha256(data));
    expect(sha256(await readFile(fetched.path))).toBe(sha256(data));
  });

  it("reads into memory with the download's checks: corrupted bytes are detected and read again", async () => {
    const { storage, lines } = gcs();
    const k = key("cache/sidecar.json");
    const data = Buffer.from(JSON.stringify({ sha256: "ab".repeat(32), frames: 240 }));
    await put(k, data);
    proxy.reset();
    proxy.inject({ kind: "corrupt", times: 1, match: { path: "alt=media" } });
    expect((await storage.read(k)).toString()).toBe(data.toString());
    expect(downloads(k)).toHaveLength(2);
    expect(requestsFor(k)).toHaveLength(2);
    expect(lines.find((line) => line.severity === "WARNING")?.["reason"]).toBe("CONTENT_DOWNLOAD_MISMATCH");
  });

  it("fetches an object stored gzip (served compressed) by its metadata instead, decompressed and whole", async () => {
    const { storage } = gcs();
    const k = key("clips/stored-gzip.json");
    const data = Buffer.from(JSON.stringify({ text: "x".repeat(50_000) }));
    await direct.file(k).save(data, { resumable: false, gzip: true });
    proxy.reset();
    const dir = await mkdtemp(path.join(work, "gzip-"));
    const fetched = await storage.fetch(k, dir, undefined, { sha256: true });
    expect(sha256(await readFile(fetched.path))).toBe(sha256(data));
    expect(fetched.sha256).toBe(sha256(data));
    expect(fetched.hash).toBe((await storage.describe(k)).hash);
    // The first response could not be checked as it arrived: a metadata request, then a pinned download.
    expect(downloads(k).length).toBe(2);
    expect(requestsFor(k).some((r) => !r.url.includes("alt=media"))).toBe(true);
    expect(await readdir(dir)).toEqual([path.basename(fetched.path)]);
    expect((await storage.read(k)).toString()).toBe(data.toString());
  });

  it("gives up after 3 attempts of 503 with a retryable STORAGE_UNAVAILABLE naming the key", async () => {
    const { storage } = gcs();
    const k = key("clips/down.mp4");
    await put(k, Buffer.from("x"));
    proxy.reset();
    proxy.inject({ kind: "status", status: 503, times: 100, match: { path: "alt=media" } });
    const dir = await mkdtemp(path.join(work, "down-"));
    const error = await expectJobError(storage.fetch(k, dir));
    expect(error.code).toBe("STORAGE_UNAVAILABLE");
    expect(error.retryable).toBe(true);
    expect(error.message).toBe(`Storage unavailable: download of ${k} failed after 3 attempts (HTTP 503)`);
    expect(downloads(k)).toHaveLength(3);
    expect(await readdir(dir)).toEqual([]);
  });

  it("honours a custom attempt count and retries uploads too", async () => {
    const { storage } = gcs({ retry: { attempts: 2, minDelayMs: 10 } });
    const k = key("output/video.mp4");
    const file = path.join(work, "retry-upload.mp4");
    const data = randomBytes(4096);
    await writeFile(file, data);
    proxy.inject({ kind: "status", status: 429, times: 1, match: { method: "POST", path: "/upload/" } });
    await storage.upload(file, k, { contentType: "video/mp4", metadata: { task_id: "t" } });
    expect(sha256((await direct.file(k).download())[0])).toBe(sha256(data));

    proxy.inject({ kind: "status", status: 500, times: 100, match: { method: "POST", path: "/upload/" } });
    const error = await expectJobError(
      storage.upload(file, k, { contentType: "video/mp4", metadata: { task_id: "t" } }),
    );
    expect(error.code).toBe("STORAGE_UNAVAILABLE");
    expect(error.message).toBe(`Storage unavailable: upload of ${k} failed after 2 attempts (HTTP 500)`);
  });

  it("checks an upload's stored checksum: bytes corrupted on the way are deleted and sent again", async () => {
    const { storage } = gcs({ retry: { attempts: 2, minDelayMs: 10 } });
    const k = key("output/corrupted-upload.mp4");
    const file = path.join(work, "corrupted-upload.mp4");
    const data = randomBytes(64 * 1024);
    await writeFile(file, data);
    const uploads = () => proxy.requests.filter((r) => r.method === "POST" && r.url.includes("/upload/"));
    const before = uploads().length;
    // A byte inside the file's part of the multipart body (its closing boundary is under 100 bytes).
    proxy.inject({
      kind: "corrupt-request",
      fromEnd: 200,
      times: 1,
      match: { method: "POST", path: "/upload/" },
    });
    await storage.upload(file, k, { contentType: "video/mp4", metadata: { task_id: "t" } });
    expect(uploads().length - before).toBe(2);
    expect(uploads().at(-2)?.fault).toBe("corrupt-request");
    expect(sha256((await direct.file(k).download())[0])).toBe(sha256(data));

    // Corrupted on every attempt: the upload fails and leaves no object behind.
    const bad = key("output/never-stored.mp4");
    proxy.inject({
      kind: "corrupt-request",
      fromEnd: 200,
      times: 2,
      match: { method: "POST", path: "/upload/" },
    });
    const error = await expectJobError(
      storage.upload(file, bad, { contentType: "video/mp4", metadata: { task_id: "t" } }),
    );
    expect(error.code).toBe("STORAGE_UNAVAILABLE");
    expect((await direct.file(bad).exists())[0]).toBe(false);
  });

  it("checks a resumable upload (over 5 MiB) the same way", async () => {
    const { storage } = gcs({ retry: { attempts: 2, minDelayMs: 10 } });
    const k = key("output/large.mp4");
    const file = path.join(work, "large-upload.mp4");
    const data = randomBytes(6 * 1024 * 1024 + 3);
    await writeFile(file, data);
    await storage.upload(file, k, { contentType: "video/mp4", metadata: { task_id: "t" } });
    expect(sha256((await direct.file(k).download())[0])).toBe(sha256(data));
    // The content goes in the session's PUT: corrupted once, it is sent again.
    proxy.inject({ kind: "corrupt-request", fromEnd: 1000, times: 1, match: { method: "PUT" } });
    await storage.upload(file, k, { contentType: "video/mp4", metadata: { task_id: "t" } });
    expect(proxy.requests.some((r) => r.fault === "corrupt-request" && r.method === "PUT")).toBe(true);
    expect(sha256((await direct.file(k).download())[0])).toBe(sha256(data));
  });

  it("stops waiting and retrying when the signal aborts", async () => {
    const { storage } = gcs({ retry: { minDelayMs: 5_000 } });
    const k = key("clips/slow.mp4");
    await put(k, Buffer.from("x"));
    proxy.reset();
    proxy.inject({ kind: "status", status: 503, times: 100, match: { path: "alt=media" } });
    const controller = new AbortController();
    const reason = new Error("Job terminated: SIGTERM");
    setTimeout(() => controller.abort(reason), 100);
    const started = performance.now();
    await expect(storage.fetch(k, work, controller.signal)).rejects.toBe(reason);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(downloads(k)).toHaveLength(1);
  });

  it("abandons a download that stalls (no byte for stallTimeoutMs) and retries it", async () => {
    const { storage, lines } = gcs({ stallTimeoutMs: 400 });
    const k = key("clips/stalled.mp4");
    const data = randomBytes(32 * 1024);
    await put(k, data);
    proxy.reset();
    proxy.inject({ kind: "delay", ms: 5_000, times: 1, match: { path: "alt=media" } });
    const dir = await mkdtemp(path.join(work, "stall-"));
    const started = performance.now();
    const fetched = await storage.fetch(k, dir);
    expect(performance.now() - started).toBeLessThan(4_000);
    expect(sha256(await readFile(fetched.path))).toBe(sha256(data));
    expect(await readdir(dir)).toEqual([path.basename(fetched.path)]);
    expect(lines.filter((line) => line.severity === "WARNING").map((line) => line["reason"])).toEqual([
      "ETIMEDOUT",
    ]);
  });

  it("aborts a hanging upload when the signal aborts, and publishes nothing", async () => {
    const { storage } = gcs();
    const k = key("output/aborted.mp4");
    const file = path.join(work, "aborted-upload.mp4");
    await writeFile(file, randomBytes(64 * 1024));
    proxy.reset();
    proxy.inject({ kind: "delay", ms: 10_000, times: 1, match: { method: "POST", path: "/upload/" } });
    const controller = new AbortController();
    const reason = new Error("Job terminated: SIGTERM");
    setTimeout(() => controller.abort(reason), 300);
    const started = performance.now();
    await expect(
      storage.upload(file, k, { contentType: "video/mp4", metadata: {} }, controller.signal),
    ).rejects.toBe(reason);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect((await direct.file(k).exists())[0]).toBe(false);
  });

  it("does not load or build a client before the first call", async () => {
    const { storage } = gcs({ bucket: "never-used-bucket" });
    expect(storage.url("a/b.mp4")).toBe("gs://never-used-bucket/a/b.mp4");
    expect(proxy.requests).toEqual([]);
  });
});
