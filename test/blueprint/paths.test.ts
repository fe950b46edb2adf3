import { describe, expect, it } from "vitest";
import { checkStorageKey, extensionOf } from "../../src/blueprint/paths.js";

describe("checkStorageKey", () => {
  it.each([
    ["songs/Amor.mp3"],
    ["a.mp4"],
    ["Bachata_steps/basic_steps/basic_1.mp4"],
    ["clips/clip..v2.mp4"],
    ["clips/..hidden.mp4"],
    ["clips/...mp4"],
    ["clips/.hidden.mp4"],
    ["output/choreography_0b4c….mp4"],
    ["name with spaces.mp4"],
    ["x".repeat(1024)],
  ])("accepts %j unchanged", (key) => {
    expect(checkStorageKey(key)).toEqual({ ok: true, key });
  });

  it.each([
    ["", "an empty path"],
    ["..", "a path with a '..' segment"],
    ["../a.mp4", "a path with a '..' segment"],
    ["a/../b.mp4", "a path with a '..' segment"],
    ["a/..", "a path with a '..' segment"],
    [".", "a path with a '.' segment"],
    ["a/./b.mp4", "a path with a '.' segment"],
    ["a//b.mp4", "a path with an empty segment"],
    ["a/", "a path with an empty segment"],
    ["/x", "an absolute path"],
    ["/etc/passwd", "an absolute path"],
    ["//server/share/x.mp4", "an absolute path"],
    ["C:\\x", "a path with backslashes"],
    ["C:/x", "an absolute path"],
    ["c:x.mp4", "an absolute path"],
    ["a\\b.mp4", "a path with backslashes"],
    ["..\\..\\x", "a path with backslashes"],
    ["a\u0000b", "a path with control characters"],
    ["a\nb", "a path with control characters"],
    ["a\tb", "a path with control characters"],
    ["a\u007fb", "a path with control characters"],
    ["a\u0085b", "a path with control characters"],
    ["file:///etc/passwd", "a file: URL"],
    ["http://example.com/x.mp4", "a http: URL"],
    ["HTTPS://example.com/x.mp4", "a https: URL"],
    ["data:video/mp4;base64,AAAA", "a data: URL"],
    ["gs://other-bucket/x.mp4", "a gs:// URL (storage is local, not GCS)"],
    ["x".repeat(1025), "a path longer than 1024 bytes"],
    ["é".repeat(513), "a path longer than 1024 bytes"],
  ])("rejects %j as %s (local mode)", (key, reason) => {
    expect(checkStorageKey(key)).toEqual({ ok: false, reason });
  });

  describe("GCS mode", () => {
    const bucket = { bucket: "media-bucket" };

    it("accepts gs://<configured bucket>/key and returns the key", () => {
      expect(checkStorageKey("gs://media-bucket/songs/a.mp3", bucket)).toEqual({
        ok: true,
        key: "songs/a.mp3",
      });
      expect(checkStorageKey("songs/a.mp3", bucket)).toEqual({ ok: true, key: "songs/a.mp3" });
    });

    it.each([
      ["gs://other-bucket/x.mp4", "a gs:// URL of another bucket"],
      ["gs://media-bucket-2/x.mp4", "a gs:// URL of another bucket"],
      ["gs://media-bucket", "a gs:// URL of another bucket"],
      ["gs://media-bucket/", "an empty path"],
      ["gs://media-bucket/../x.mp4", "a path with a '..' segment"],
      ["gs://media-bucket//x.mp4", "an absolute path"],
      ["gs://media-bucket/gs://media-bucket/x.mp4", "a gs:// URL of another bucket"],
    ])("rejects %j as %s", (key, reason) => {
      expect(checkStorageKey(key, bucket)).toEqual({ ok: false, reason });
    });
  });
});

describe("checkStorageKey in local mode (stripDataPrefix)", () => {
  const local = { stripDataPrefix: true };
  it.each([
    ["data/Bachata_steps/basic_steps/basic_1.mp4", "Bachata_steps/basic_steps/basic_1.mp4"],
    ["data/songs/test.mp3", "songs/test.mp3"],
    ["songs/test.mp3", "songs/test.mp3"],
    ["data/data/x.mp4", "data/x.mp4"],
    ["database/x.mp4", "database/x.mp4"],
    ["mydata/x.mp4", "mydata/x.mp4"],
    ["data", "data"],
  ])("%j → %j (one leading data/ segment only)", (raw, key) => {
    expect(checkStorageKey(raw, local)).toEqual({ ok: true, key });
  });

  it.each([
    ["data/", "an empty path"],
    ["data/../x.mp4", "a path with a '..' segment"],
    ["data//etc/passwd", "an absolute path"],
    ["data/./x.mp4", "a path with a '.' segment"],
    ["data/gs://b/x.mp4", "a gs:// URL (storage is local, not GCS)"],
  ])("checks %j after stripping: %s", (raw, reason) => {
    expect(checkStorageKey(raw, local)).toEqual({ ok: false, reason });
  });

  it("keeps data/ in GCS mode (object names are verbatim)", () => {
    expect(checkStorageKey("data/x.mp4", { bucket: "media-bucket" })).toEqual({
      ok: true,
      key: "data/x.mp4",
    });
  });
});

describe("extensionOf", () => {
  it.each([
    ["a.mp4", "mp4"],
    ["dir/A.MOV", "mov"],
    ["dir.v2/file", ""],
    ["clip..v2.webm", "webm"],
    [".hidden", ""],
    ["dir/.hidden", ""],
    ["archive.tar.gz", "gz"],
    ["trailing.", ""],
  ])("%j → %j", (key, extension) => {
    expect(extensionOf(key)).toBe(extension);
  });
});
