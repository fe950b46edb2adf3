import { createHash } from "node:crypto";
import {
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { validateBlueprint } from "../../src/blueprint/parse.js";
import { createLocalStorage } from "../../src/storage/local.js";
import { DEFAULTS } from "../helpers/blueprints.js";
import { expectJobError, testStorageContract } from "./contract.js";

testStorageContract({
  name: "local",
  residence: "original",
  async create() {
    const root = await mkdtemp(path.join(os.tmpdir(), "storage-local-"));
    const file = (key: string) => path.join(root, ...key.split("/"));
    const listAll = async (dir: string): Promise<string[]> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      const names: string[] = [];
      for (const entry of entries) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) names.push(...(await listAll(full)));
        else names.push(path.relative(root, full).split(path.sep).join("/"));
      }
      return names;
    };
    return {
      storage: createLocalStorage({ root }),
      async put(key, data) {
        await mkdir(path.dirname(file(key)), { recursive: true });
        await writeFile(file(key), data);
      },
      get: (key) => readFile(file(key)).catch(() => undefined),
      list: async (prefix) => (await listAll(root)).filter((name) => name.startsWith(prefix)).sort(),
      privatePaths: [root],
      expectedUrl: (key) => `file://${root}/${key}`,
      close: () => rm(root, { recursive: true, force: true }),
    };
  },
});

describe("local storage: the root is a hard boundary", () => {
  let base: string;
  let root: string;
  let outside: string;
  let work: string;

  beforeEach(async () => {
    base = await realpath(await mkdtemp(path.join(os.tmpdir(), "storage-local-sec-")));
    root = path.join(base, "root");
    outside = path.join(base, "outside");
    work = path.join(base, "work");
    for (const dir of [root, outside, work, path.join(root, "clips"), path.join(root, "output")]) {
      await mkdir(dir, { recursive: true });
    }
    await writeFile(path.join(outside, "secret.mp4"), "secret");
    await writeFile(path.join(root, "clips", "a.mp4"), "clip a");
  });
  afterEach(() => rm(base, { recursive: true, force: true }));

  const upload = async (key: string, data = "new video") => {
    const file = path.join(work, "out.mp4");
    await writeFile(file, data);
    return createLocalStorage({ root }).upload(file, key, { contentType: "video/mp4", metadata: {} });
  };

  it("uses a fetched file in place, without copying it", async () => {
    const storage = createLocalStorage({ root });
    const fetched = await storage.fetch("clips/a.mp4", work);
    expect(fetched).toEqual({ path: path.join(root, "clips", "a.mp4"), bytes: 6, residence: "original" });
    expect(await readdir(work)).toEqual([]);
  });

  it("refuses a symlinked file that points outside the root", async () => {
    await symlink(path.join(outside, "secret.mp4"), path.join(root, "clips", "evil.mp4"));
    const storage = createLocalStorage({ root });
    // Each call made only when awaited: a second rejection pending meanwhile would be unhandled.
    for (const attempt of [
      () => storage.fetch("clips/evil.mp4", work),
      () => storage.describe("clips/evil.mp4"),
    ]) {
      const error = await expectJobError(attempt());
      expect(error.code).toBe("STORAGE_DENIED");
      expect(error.message).toBe("Storage key resolves outside the storage root: clips/evil.mp4");
    }
  });

  it("refuses a file below a symlinked directory that points outside the root", async () => {
    await symlink(outside, path.join(root, "linked"), "dir");
    const error = await expectJobError(createLocalStorage({ root }).fetch("linked/secret.mp4", work));
    expect(error.code).toBe("STORAGE_DENIED");
    expect(error.message).not.toContain(outside);
  });

  it("refuses an upload through a symlinked directory pointing outside, writing nothing there", async () => {
    await symlink(outside, path.join(root, "linked"), "dir");
    for (const key of ["linked/out.mp4", "linked/new/deeper/out.mp4"]) {
      const error = await expectJobError(upload(key));
      expect(error.code).toBe("STORAGE_DENIED");
      expect(error.message).toContain(key);
    }
    expect(await readdir(outside)).toEqual(["secret.mp4"]);
  });

  it("replaces a symlink at the output key itself, never the file it points to", async () => {
    await symlink(path.join(outside, "secret.mp4"), path.join(root, "output", "video.mp4"));
    await upload("output/video.mp4");
    expect(await readFile(path.join(outside, "secret.mp4"), "utf8")).toBe("secret");
    expect((await lstat(path.join(root, "output", "video.mp4"))).isFile()).toBe(true);
    expect(await readFile(path.join(root, "output", "video.mp4"), "utf8")).toBe("new video");
  });

  it("follows symlinks that stay inside the root, and a root that is itself a symlink", async () => {
    await symlink(path.join(root, "clips", "a.mp4"), path.join(root, "alias.mp4"));
    await symlink(root, path.join(base, "root-link"), "dir");
    const storage = createLocalStorage({ root: path.join(base, "root-link") });
    expect((await storage.fetch("alias.mp4", work)).bytes).toBe(6);
    expect(storage.url("clips/a.mp4")).toBe(`file://${path.join(base, "root-link", "clips", "a.mp4")}`);
  });

  it("refuses a directory where a media file is expected", async () => {
    const error = await expectJobError(createLocalStorage({ root }).fetch("clips", work));
    expect(error.code).toBe("STORAGE_ERROR");
    expect(error.message).toBe("Media file is not a regular file: clips");
  });

  it("publishes atomically: a reader of the old file keeps the whole old bytes, no temp file remains", async () => {
    const target = path.join(root, "output", "video.mp4");
    await writeFile(target, "old video, complete");
    const reader = await open(target, "r");
    try {
      await upload("output/video.mp4", "new video, complete");
      expect((await reader.readFile()).toString()).toBe("old video, complete");
    } finally {
      await reader.close();
    }
    expect(await readFile(target, "utf8")).toBe("new video, complete");
    expect(await readdir(path.join(root, "output"))).toEqual(["video.mp4"]);
  });

  it("creates missing parent directories inside the root", async () => {
    await upload("output/2025/11/video.mp4");
    expect(await readFile(path.join(root, "output", "2025", "11", "video.mp4"), "utf8")).toBe("new video");
  });

  it("removes its temp file when the rename fails", async () => {
    await mkdir(path.join(root, "output", "taken.mp4", "inner"), { recursive: true });
    await writeFile(path.join(root, "output", "taken.mp4", "inner", "x"), "x");
    const error = await expectJobError(upload("output/taken.mp4"));
    expect(error.code).toBe("STORAGE_ERROR");
    expect(await readdir(path.join(root, "output"))).toEqual(["taken.mp4"]);
  });

  it("reports a missing root without its path", async () => {
    const missingRoot = path.join(base, "nope");
    const error = await expectJobError(createLocalStorage({ root: missingRoot }).fetch("clips/a.mp4", work));
    expect(error.code).toBe("STORAGE_ERROR");
    expect(error.message).not.toContain(missingRoot);
  });
});

describe("local storage as the API's data directory (SPEC §3.2)", () => {
  let base: string;
  let data: string;
  let work: string;

  beforeEach(async () => {
    base = await realpath(await mkdtemp(path.join(os.tmpdir(), "storage-local-data-")));
    data = path.join(base, "app-data");
    work = path.join(base, "work");
    for (const dir of [path.join(data, "songs"), path.join(data, "Bachata_steps", "body_roll"), work]) {
      await mkdir(dir, { recursive: true });
    }
    await writeFile(path.join(data, "songs", "Amor.mp3"), "song");
    await writeFile(path.join(data, "Bachata_steps", "body_roll", "body_roll_1.mp4"), "clip");
    await writeFile(path.join(base, "secret.mp4"), "secret");
  });
  afterEach(() => rm(base, { recursive: true, force: true }));

  /** The keys a validated blueprint hands the adapter (local mode: one leading data/ stripped). */
  const keysOf = (audio: string, video: string, output: string) => {
    const parsed = validateBlueprint(
      {
        task_id: "t-1",
        audio_path: audio,
        moves: [{ video_path: video, start_time: 0, duration: 8 }],
        output_config: { output_path: output },
      },
      DEFAULTS,
    );
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    const bp = parsed.blueprint;
    return { audio: bp.audio_path, video: bp.moves[0]!.video_path, output: bp.output_config.output_path };
  };

  it("resolves songs/… and data/Bachata_steps/… of one blueprint in the same directory and writes <root>/<output_path>", async () => {
    const keys = keysOf(
      "songs/Amor.mp3",
      "data/Bachata_steps/body_roll/body_roll_1.mp4",
      "output/user_1/choreography_t-1.mp4",
    );
    const storage = createLocalStorage({ root: data });
    expect((await storage.fetch(keys.audio, work)).path).toBe(path.join(data, "songs", "Amor.mp3"));
    expect((await storage.fetch(keys.video, work)).path).toBe(
      path.join(data, "Bachata_steps", "body_roll", "body_roll_1.mp4"),
    );
    await writeFile(path.join(work, "out.mp4"), "video");
    await storage.upload(path.join(work, "out.mp4"), keys.output, { contentType: "video/mp4", metadata: {} });
    const served = path.join(data, "output", "user_1", "choreography_t-1.mp4");
    expect(await readFile(served, "utf8")).toBe("video");
    expect(storage.url(keys.output)).toBe(`file://${served}`);
  });

  it("checks containment after stripping: data/ never reaches above the data directory", async () => {
    await symlink(path.join(base, "secret.mp4"), path.join(data, "songs", "evil.mp3"));
    const keys = keysOf(
      "data/songs/evil.mp3",
      "data/Bachata_steps/body_roll/body_roll_1.mp4",
      "data/out.mp4",
    );
    expect(keys.audio).toBe("songs/evil.mp3");
    const error = await expectJobError(createLocalStorage({ root: data }).fetch(keys.audio, work));
    expect(error.code).toBe("STORAGE_DENIED");
    const traversal = validateBlueprint(
      {
        task_id: "t-1",
        audio_path: "data/../secret.mp4",
        moves: [{ video_path: "data//etc/passwd", start_time: 0, duration: 8 }],
        output_config: { output_path: "data/" },
      },
      DEFAULTS,
    );
    expect(traversal.ok ? [] : traversal.issues.map((problem) => problem.path)).toEqual([
      "audio_path",
      "moves[0].video_path",
      "output_config.output_path",
    ]);
  });
});

describe("local storage: the source-hash memo", () => {
  let root: string;
  const sha = (data: string) => `sha256-${createHash("sha256").update(data).digest("hex")}`;
  const memoFiles = async () =>
    (await readdir(path.join(root, ".cache/hash-memo")).catch(() => [] as string[])).filter((f) =>
      f.endsWith(".json"),
    );
  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "storage-memo-"));
    await mkdir(path.join(root, "clips"));
    await writeFile(path.join(root, "clips/a.mp4"), "aaaa");
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("records a hash and serves it while the file is unchanged", async () => {
    const storage = createLocalStorage({ root, hashMemoPrefix: ".cache" });
    expect(await storage.describe("clips/a.mp4")).toEqual({ bytes: 4, hash: sha("aaaa") });
    const [memo] = await memoFiles();
    expect(memo).toBeDefined();
    // Proof that a hit does not read the file: a memo with another hash (same identity) is served as is.
    const file = path.join(root, ".cache/hash-memo", memo!);
    const forged = { ...JSON.parse(await readFile(file, "utf8")), hash: sha("forged") };
    await writeFile(file, JSON.stringify(forged));
    expect((await storage.describe("clips/a.mp4")).hash).toBe(sha("forged"));
    // Without the memo prefix nothing is memoised.
    expect((await createLocalStorage({ root }).describe("clips/a.mp4")).hash).toBe(sha("aaaa"));
  });

  it("is not trusted once the file changed, even with its size and mtime put back (ctime, inode)", async () => {
    const storage = createLocalStorage({ root, hashMemoPrefix: ".cache" });
    const file = path.join(root, "clips/a.mp4");
    await storage.describe("clips/a.mp4");
    const { mtime } = await stat(file);
    // Rewritten in place, same size, mtime restored: only ctime tells.
    await writeFile(file, "bbbb");
    await utimes(file, mtime, mtime);
    expect((await storage.describe("clips/a.mp4")).hash).toBe(sha("bbbb"));
    // Replaced by rename (new inode), same size, mtime restored.
    await writeFile(path.join(root, "clips/new.tmp"), "cccc");
    await utimes(path.join(root, "clips/new.tmp"), mtime, mtime);
    await rename(path.join(root, "clips/new.tmp"), file);
    expect((await storage.describe("clips/a.mp4")).hash).toBe(sha("cccc"));
    // A memo recorded for one key is not used for another with the same bytes' identity.
    await writeFile(path.join(root, "clips/b.mp4"), "dddd");
    expect((await storage.describe("clips/b.mp4")).hash).toBe(sha("dddd"));
    expect(await memoFiles()).toHaveLength(2);
  });

  it("ignores a memo that is garbage, and never writes it through a symlink out of the root", async () => {
    const outside = await mkdtemp(path.join(os.tmpdir(), "storage-memo-outside-"));
    try {
      await symlink(outside, path.join(root, ".cache"));
      const storage = createLocalStorage({ root, hashMemoPrefix: ".cache" });
      expect((await storage.describe("clips/a.mp4")).hash).toBe(sha("aaaa"));
      expect(await readdir(outside)).toEqual([]);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
    await rm(path.join(root, ".cache"));
    await mkdir(path.join(root, ".cache/hash-memo"), { recursive: true });
    const storage = createLocalStorage({ root, hashMemoPrefix: ".cache" });
    await storage.describe("clips/a.mp4");
    const [memo] = await memoFiles();
    await writeFile(path.join(root, ".cache/hash-memo", memo!), "{not json");
    expect((await storage.describe("clips/a.mp4")).hash).toBe(sha("aaaa"));
  });
});
