import { describe, expect, it } from "vitest";
import { assertStorageKey, contentTypeFor, isInside, localNameFor } from "../../src/storage/keys.js";

describe("contentTypeFor", () => {
  it.each([
    ["output/a.mp4", "video/mp4"],
    ["output/A.MP4", "video/mp4"],
    ["output/a.mov", "video/quicktime"],
    ["output/a.mkv", "video/x-matroska"],
    ["output/a.webm", "video/webm"],
    ["output/a.avi", "application/octet-stream"],
    ["output/mp4", "application/octet-stream"],
  ])("%s → %s", (key, type) => expect(contentTypeFor(key)).toBe(type));
});

describe("storage key helpers", () => {
  it("gives distinct keys distinct local names, keeping a plain extension", () => {
    const names = ["a/b.mp4", "a_b.mp4", "a/b.MP4", "a/b", "a/b.mp4 x"].map(localNameFor);
    expect(new Set(names).size).toBe(names.length);
    expect(names[0]).toMatch(/^[0-9a-f]{24}\.mp4$/);
    expect(names[3]).toMatch(/^[0-9a-f]{24}$/);
    expect(names[4]).toMatch(/^[0-9a-f]{24}$/);
  });

  it("normalises the configured bucket's gs:// URL and refuses others with STORAGE_DENIED", () => {
    expect(assertStorageKey("gs://mine/clips/a.mp4", { bucket: "mine" })).toBe("clips/a.mp4");
    expect(() => assertStorageKey("gs://theirs/clips/a.mp4", { bucket: "mine" })).toThrow(
      'Invalid storage key "gs://theirs/clips/a.mp4": a gs:// URL of another bucket is not allowed',
    );
  });

  it("checks containment on segment boundaries", () => {
    expect(isInside("/data/root", "/data/root/a")).toBe(true);
    expect(isInside("/data/root", "/data/root")).toBe(true);
    expect(isInside("/data/root", "/data/rootkit/a")).toBe(false);
  });
});
