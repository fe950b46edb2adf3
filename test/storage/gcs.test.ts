/**
 * The GCS driver against the firebase-tools Cloud Storage emulator, with the real
 * @google-cloud/storage client. Every request goes through a fault proxy (faults off unless a test
 * injects them), so the tests can count requests and script failures.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Bucket } from "@google-cloud/storage";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createGcsStorage, type GcsStorageOptions } from "../../src/storage/gcs.js";
import { contentTypeFor } from "../../src/storage/keys.js";
import { type FaultProxy, startFaultProxy } from "../helpers/fault-proxy.js";
import { EMULATOR_PROJECT_ID, type GcsEmulator, startGcsEmulator } from "../helpers/gcs-emulator.js";
import { expectJobError, sha256, testStorageContract } from "./contract.js";
import { captureLogger } from "./log-capture.js";

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
  const log = captureLogger();
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
    await (await import("node:fs/promises")).writeFile(file, randomBytes(4096));
    await storage.upload(file, k, {
      contentType: contentTypeFor(k),
      metadata: { task_id: "task-42", blueprint_sha256: "ab".repeat(32) },
    });
    const [metadata] = await direct.file(k).getMetadata();
    expect(metadata.contentType).toBe("video/quicktime");
    expect(metadata.metadata).toMatchObject({ task_id: "task-42", blueprint_sha256: "ab".repeat(32) });
    console.info(proxy.requests);
  });

  it("debug: request shapes", async () => {
    const { storage } = gcs();
    const k = key("clips/a.mp4");
    await put(k, randomBytes(1000));
    proxy.reset();
    await storage.fetch(k, work);
    await storage.exists(k);
    console.info(proxy.requests);
    expect(downloads(k).length).toBe(1);
  });
});
