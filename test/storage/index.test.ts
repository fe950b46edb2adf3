import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { createStorage } from "../../src/storage/index.js";

describe("createStorage", () => {
  const config = (env: Record<string, string>) => {
    const parsed = parseConfig(env, "/srv/job");
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    return parsed.config;
  };

  it("chooses GCS when GCS_BUCKET_NAME is set", () => {
    const storage = createStorage(config({ GCS_BUCKET_NAME: "my-bucket" }), silentLogger());
    expect(storage.name).toBe("gcs");
    expect(storage.url("output/v.mp4")).toBe("gs://my-bucket/output/v.mp4");
  });

  it("chooses the local directory otherwise", () => {
    const storage = createStorage(config({ LOCAL_STORAGE_ROOT: "data" }), silentLogger());
    expect(storage.name).toBe("local");
    expect(storage.url("output/v.mp4")).toBe("file:///srv/job/data/output/v.mp4");
  });

  it("takes the directory from LOCAL_STORAGE_PATH (the Python job's variable) when LOCAL_STORAGE_ROOT is unset", () => {
    const storage = createStorage(config({ LOCAL_STORAGE_PATH: "/app/data" }), silentLogger());
    expect(storage.url("output/user_1/v.mp4")).toBe("file:///app/data/output/user_1/v.mp4");
  });
});
