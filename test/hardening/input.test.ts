// biome-ignore-all lint/suspicious/noExplicitAny: hostile blueprints are mutated freely
/**
 * Hostile input through the real CLI (local storage, real PostgreSQL): malformed and malicious
 * blueprints and hostile media. Each variant gets its own task row; every run must end with the
 * documented exit code and row (cases.ts), no stack trace, no temp files and no output.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseBlueprint } from "../../src/blueprint/parse.js";
import { formatIssues } from "../../src/blueprint/summary.js";
import { loadConfig } from "../../src/config.js";
import { storableText } from "../../src/tasks/store.js";
import { probeVideo } from "../helpers/measure.js";
import { mutate, mutations } from "../helpers/mutations.js";
import {
  blueprint,
  expectNoOutput,
  expectNoSecrets,
  expectNoTemp,
  expectOutcome,
  type Harness,
  hardeningCase,
  inParallel,
  jobEnv,
  type Run,
  runCli,
  startHarness,
  type TaskTableRow,
} from "./harness.js";
import { HOSTILE, place, song, tinyClip } from "./media.js";

let h: Harness;
let outside: string;

beforeAll(async () => {
  h = await startHarness("hardening-input");
  outside = mkdtempSync(path.join(os.tmpdir(), "hardening-outside-"));
  writeFileSync(path.join(outside, "secret.mp4"), "not for you");
  place(h.root, "songs/song.m4a", song(2));
  place(h.root, "clips/red.mp4", tinyClip("red"));
  place(h.root, "clips/blue.mp4", tinyClip("blue"));
});

afterAll(async () => {
  await h?.stop();
  if (outside !== undefined) rmSync(outside, { recursive: true, force: true });
});

/** A valid two-move blueprint for `taskId`, changed by `mutate`. */
function base(taskId: string, mutate: (doc: Record<string, any>) => void = () => {}): Record<string, any> {
  const doc = blueprint(taskId, [
    { clip: "clips/red.mp4", duration: 0.5 },
    { clip: "clips/blue.mp4", duration: 0.5, transition: "crossfade" },
  ]) as Record<string, any>;
  mutate(doc);
  return doc;
}

interface Variant {
  name: string;
  /** The blueprint document, or raw text. */
  doc: (taskId: string) => Record<string, any> | string;
  /** Another excerpt than the case's. */
  error?: string;
  /** Pass the blueprint as `--blueprint FILE` (an env var holds at most 128 KiB on Linux). */
  file?: boolean;
}

async function runVariant(_id: string, variant: Variant): Promise<{ run: Run; taskId: string }> {
  const taskId = await h.newTask();
  const doc = variant.doc(taskId);
  const text = typeof doc === "string" ? doc : JSON.stringify(doc);
  const file = variant.file === true ? path.join(outside, `${taskId}.json`) : undefined;
  if (file !== undefined) writeFileSync(file, text);
  const run = await runCli({
    env: jobEnv(h, taskId, file === undefined ? text : undefined),
    args: file === undefined ? [] : ["--blueprint", file],
    killAfterMs: 60_000,
  });
  return { run, taskId };
}

/** Runs every variant (3 at a time) and checks each against the case's outcome, then with `check`. */
async function checkVariants(
  id: string,
  variants: Variant[],
  check: (task: TaskTableRow, variant: Variant) => void = () => {},
): Promise<void> {
  const results = await inParallel(
    3,
    variants.map((variant) => () => runVariant(id, variant)),
  );
  for (const [index, { run, taskId }] of results.entries()) {
    const variant = variants[index]!;
    const task = await expectOutcome(h, run, taskId, id, { checkTemp: false, error: variant.error });
    expect(task.error, variant.name).toBeTruthy();
    check(task, variant);
  }
  expectNoTemp(h);
  expectNoOutput(h);
}

const video = (p: string) => (id: string) => base(id, (d) => (d["moves"][0].video_path = p));
const audio = (p: string) => (id: string) => base(id, (d) => (d["audio_path"] = p));
const output = (p: string) => (id: string) => base(id, (d) => (d["output_config"].output_path = p));
const config = (key: string, value: unknown) => (id: string) =>
  base(id, (d) => (d["output_config"][key] = value));

describe("hostile blueprints (SPEC §3.1–3.2)", () => {
  hardeningCase("path-dotdot", () =>
    checkVariants("path-dotdot", [
      { name: "clip ../../etc/passwd", doc: video("../../etc/passwd"), error: "moves[0].video_path" },
      { name: "clip a/../../b", doc: video("clips/../../outside.mp4"), error: "moves[0].video_path" },
      { name: "song ..", doc: audio("../song.m4a"), error: "audio_path" },
      { name: "output ..", doc: output("output/../../evil.mp4"), error: "output_config.output_path" },
      { name: "trailing ..", doc: video("clips/.."), error: "moves[0].video_path" },
    ]),
  );

  hardeningCase("path-absolute", () =>
    checkVariants("path-absolute", [
      { name: "/etc/passwd", doc: video("/etc/passwd") },
      { name: "drive", doc: video("C:/Windows/x.mp4") },
      { name: "unc-ish", doc: video("//host/share/x.mp4") },
      { name: "absolute song", doc: audio("/etc/hostname") },
      { name: "absolute output", doc: output("/tmp/evil.mp4"), error: "output_config.output_path" },
    ]),
  );

  hardeningCase("path-backslash", () =>
    checkVariants("path-backslash", [
      { name: "..\\..", doc: video("..\\..\\x.mp4") },
      { name: "drive backslash", doc: video("C:\\Windows\\x.mp4") },
      { name: "clips\\red", doc: video("clips\\red.mp4") },
    ]),
  );

  hardeningCase("path-control", () =>
    checkVariants("path-control", [
      { name: "NUL", doc: video("clips/red.mp4\u0000.txt") },
      { name: "newline", doc: video("clips/red\n.mp4") },
      { name: "DEL", doc: video("clips/\u007fred.mp4") },
      { name: "C1 NEL", doc: video("clips/\u0085red.mp4") },
      { name: "ESC in song", doc: audio("songs/\u001b[31msong.m4a"), error: "audio_path" },
    ]),
  );

  hardeningCase("path-scheme", () =>
    checkVariants("path-scheme", [
      { name: "file://", doc: video("file:///etc/passwd") },
      { name: "FILE://", doc: video("FILE:///etc/passwd") },
      { name: "http://", doc: video("http://169.254.169.254/computeMetadata/v1/") },
      { name: "data:", doc: video("data:video/mp4;base64,AAAA") },
      { name: "gs:// in local mode", doc: video("gs://bucket/clips/red.mp4") },
      { name: "javascript:", doc: audio("javascript:alert(1)"), error: "audio_path" },
    ]),
  );

  hardeningCase("path-dot-empty", () =>
    checkVariants("path-dot-empty", [
      { name: "./", doc: video("./clips/red.mp4") },
      { name: "//", doc: video("clips//red.mp4") },
      { name: "trailing /", doc: video("clips/") },
      { name: "empty", doc: video("") },
    ]),
  );

  hardeningCase("path-long", () =>
    checkVariants("path-long", [{ name: "2000 bytes", doc: video(`${"a/".repeat(1000)}x.mp4`) }]),
  );

  hardeningCase("path-encoded", () =>
    checkVariants(
      "path-encoded",
      [
        "%2e%2e/%2e%2e/etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "%252e%252e/x.mp4",
        "\uff0e\uff0e/\uff0e\uff0e/etc/passwd",
        "..\u2215..\u2215etc\u2215passwd",
        "~/.ssh/id_rsa",
        "$HOME/x.mp4",
        "   ",
      ].map((p) => ({ name: p, doc: video(p) })),
      (task, variant) => {
        // The row names the key as given, so the user sees what was asked for.
        expect(task.error).toContain(variant.name);
        expect(task.error).not.toContain("not for you");
      },
    ),
  );

  hardeningCase("path-symlink", async () => {
    mkdirSync(path.join(h.root, "links"), { recursive: true });
    symlinkSync(path.join(outside, "secret.mp4"), path.join(h.root, "links", "escape.mp4"));
    symlinkSync(outside, path.join(h.root, "links", "dir"));
    try {
      await checkVariants("path-symlink", [
        { name: "file link", doc: video("links/escape.mp4") },
        { name: "dir link", doc: video("links/dir/secret.mp4") },
      ]);
      // An output through a linked directory is refused before anything is written outside.
    } finally {
      rmSync(path.join(h.root, "links"), { recursive: true, force: true });
    }
  });

  hardeningCase("output-attacks", () =>
    checkVariants("output-attacks", [
      { name: "output = clip", doc: output("clips/red.mp4") },
      { name: "output = song", doc: output("songs/song.m4a") },
      { name: "wrong extension", doc: output("output/x.avi") },
      { name: "no extension", doc: output("output/x") },
      { name: "dot file", doc: output("output/.mp4") },
      { name: "traversal", doc: output("../x.mp4") },
    ]),
  );

  hardeningCase("numbers-huge", () =>
    checkVariants("numbers-huge", [
      { name: "1e308 duration", doc: (id) => base(id, (d) => (d["moves"][0].duration = 1e308)) },
      {
        name: "1e400 start",
        doc: (id) => JSON.stringify(base(id)).replace('"start_time":0,', '"start_time":1e400,'),
        error: "moves[0].start_time",
      },
      { name: "string duration", doc: (id) => base(id, (d) => (d["moves"][0].duration = "0.5")) },
      { name: "boolean duration", doc: (id) => base(id, (d) => (d["moves"][0].duration = true)) },
      { name: "negative start", doc: (id) => base(id, (d) => (d["moves"][0].start_time = -1)) },
      {
        name: "-0 duration",
        doc: (id) => JSON.stringify(base(id)).replace('"duration":0.5', '"duration":-0'),
      },
      { name: "1-frame duration", doc: (id) => base(id, (d) => (d["moves"][0].duration = 1 / 60)) },
      { name: "frame rate 1e9", doc: config("frame_rate", 1e9), error: "output_config.frame_rate" },
      { name: "crf 1e308", doc: config("crf", 1e308), error: "output_config.crf" },
      {
        name: "resolution 99999",
        doc: config("resolution", "99998x99998"),
        error: "output_config.resolution",
      },
      {
        name: "total 1e308",
        doc: (id) => base(id, (d) => (d["total_duration"] = 1e308)),
        error: "total_duration",
      },
      {
        name: "2 h timeline",
        doc: (id) =>
          base(id, (d) => {
            d["moves"][1].duration = 7200;
            d["total_duration"] = 7200.5;
          }),
        error: "1 hour",
      },
    ]),
  );

  hardeningCase("moves-10000", () =>
    checkVariants("moves-10000", [
      {
        name: "10 000 moves",
        file: true,
        doc: (id) =>
          base(id, (d) => {
            d["moves"] = Array.from({ length: 10_000 }, (_, i) => ({
              video_path: "clips/red.mp4",
              start_time: i * 0.1,
              duration: 0.1,
            }));
            delete d["total_duration"];
          }),
      },
    ]),
  );

  hardeningCase("nested-junk", async () => {
    const deep = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`;
    const deepObject = (n: number) => `${'{"a":'.repeat(n)}1${"}".repeat(n)}`;
    const variants: Variant[] = [
      {
        name: "deep array in generation_parameters",
        file: true,
        doc: (id) => JSON.stringify(base(id)).replace(/}$/, `,"generation_parameters":${deep(100_000)}}`),
      },
      {
        name: "deep objects as a move field",
        file: true,
        doc: (id) =>
          JSON.stringify(base(id)).replace('"clip_id":"move_1"', `"clip_id":${deepObject(50_000)}`),
        error: "moves[0].clip_id",
      },
    ];
    await checkVariants("nested-junk", variants);
    // Junk under an unknown field is ignored: a newer API never breaks an older job (SPEC §3).
    const { run, taskId } = await runVariant("nested-junk", {
      name: "deep unknown field",
      file: true,
      doc: (id) => JSON.stringify(base(id)).replace(/}$/, `,"x_future":${deep(100_000)}}`),
    });
    expect(run.code, run.stderr).toBe(0);
    expect((await h.row(taskId)).status).toBe("completed");
    expectNoTemp(h);
    rmSync(path.join(h.root, "output"), { recursive: true, force: true });
  });

  hardeningCase("oversized", () =>
    checkVariants("oversized", [
      {
        name: "1 MiB + 1",
        file: true,
        doc: (id) => {
          const text = JSON.stringify({ ...base(id), padding: "" });
          return text.replace('"padding":""', `"padding":"${"x".repeat(1024 * 1024 + 1 - text.length)}"`);
        },
      },
      {
        name: "1 MiB of multi-byte characters",
        file: true,
        doc: (id) => JSON.stringify({ ...base(id), padding: "é".repeat(600_000) }),
      },
    ]),
  );

  hardeningCase("not-json", () =>
    checkVariants("not-json", [
      { name: "garbage", doc: () => "{not json" },
      { name: "truncated", doc: (id) => JSON.stringify(base(id)).slice(0, 80) },
      { name: "array", doc: () => "[]" },
      { name: "null", doc: () => "null" },
      { name: "number", doc: () => "42" },
      { name: "empty object", doc: () => "{}", error: "Missing required field: audio_path" },
      { name: "moves not array", doc: (id) => base(id, (d) => (d["moves"] = { 0: {} })), error: "moves" },
      {
        name: "moves empty",
        doc: (id) => base(id, (d) => (d["moves"] = [])),
        error: "moves array cannot be empty",
      },
      { name: "BOM + garbage", doc: () => "\uFEFF\uFEFF{}" },
      {
        name: "prototype pollution",
        doc: (id) =>
          JSON.stringify(base(id))
            .replace(/^{/, '{"__proto__":{"ok":true},"constructor":{"prototype":{"x":1}},')
            .replace('"moves":[', '"moves":"'),
      },
    ]),
  );
});

describe("unicode", () => {
  hardeningCase("unicode", async () => {
    const names = [
      "clips/\u{1F483} baile.mp4",
      "clips/\u202Egnp.mp4",
      "clips/zero\u200Bwidth.mp4",
      "clips/cafe\u0301.mp4",
      "clips/caf\u00e9.mp4",
    ];
    for (const [index, name] of names.entries())
      place(h.root, name, tinyClip(index % 2 === 0 ? "red" : "blue"));
    const taskId = await h.newTask();
    const doc = blueprint(
      taskId,
      names.map((clip) => ({ clip, duration: 0.4 })),
      {},
      "output/\u{1F483}\u202E.mp4",
    ) as Record<string, any>;
    doc["moves"][0].clip_id = "\u{1F483}\u0000\uFEFF";
    doc["difficulty_level"] = "beginner";
    const run = await runCli({ env: jobEnv(h, taskId, doc) });
    await expectOutcome(h, run, taskId, "unicode");
    expect(probeVideo(path.join(h.root, "output/\u{1F483}\u202E.mp4")).frames).toBe(60);
    rmSync(path.join(h.root, "output"), { recursive: true, force: true });
  });

  hardeningCase("unicode-bad", () =>
    checkVariants("unicode-bad", [
      { name: "lone surrogate in a path", doc: video("clips/\ud800.mp4") },
      { name: "noncharacter", doc: video("clips/\uFFFE\uFFFF.mp4") },
      { name: "lone low surrogate in a clip", doc: video("clips/\udc00.m4a") },
    ]),
  );
});

describe("a song that cannot be fetched", () => {
  async function songRun(clipCache: "on" | "off", key: string) {
    const taskId = await h.newTask();
    const doc = base(taskId, (d) => (d["audio_path"] = key));
    const run = await runCli({ env: jobEnv(h, taskId, doc, { CLIP_CACHE: clipCache }), killAfterMs: 60_000 });
    return { run, taskId };
  }

  hardeningCase("song-missing", async () => {
    mkdirSync(path.join(h.root, "links"), { recursive: true });
    symlinkSync(path.join(outside, "secret.mp4"), path.join(h.root, "links", "song.m4a"));
    try {
      for (const key of ["songs/nope.m4a", "songs/\udc00.m4a"]) {
        const { run, taskId } = await songRun("off", key);
        await expectOutcome(h, run, taskId, "song-missing");
      }
      const { run, taskId } = await songRun("off", "links/song.m4a");
      await expectOutcome(h, run, taskId, "song-missing", {
        error: "outside the storage root",
        code: "STORAGE_DENIED",
      });
    } finally {
      rmSync(path.join(h.root, "links"), { recursive: true, force: true });
    }
  });

  hardeningCase("song-missing-clip-cache", async () => {
    // Crashed the process (unhandled rejection) until 328a0a6; now the same as with the cache off.
    const { run, taskId } = await songRun("on", "songs/nope.m4a");
    await expectOutcome(h, run, taskId, "song-missing-clip-cache");
  });
});

describe("option smuggling", () => {
  hardeningCase("ffmpeg-smuggling", () =>
    checkVariants("ffmpeg-smuggling", [
      { name: "codec with option", doc: config("video_codec", "libx264 -f lavfi") },
      { name: "codec copy", doc: config("video_codec", "copy") },
      { name: "codec newline", doc: config("audio_codec", "aac\n-i\n/etc/passwd") },
      { name: "bitrate with filter", doc: config("video_bitrate", "2M -vf drawtext=text=x") },
      { name: "bitrate with shell", doc: config("video_bitrate", "2M;rm -rf /") },
      { name: "bitrate trailing newline", doc: config("video_bitrate", "2M\n") },
      { name: "audio bitrate with map", doc: config("audio_bitrate", "128k -map 0") },
      { name: "preset with option", doc: config("preset", "veryfast -y") },
      { name: "format null", doc: config("output_format", "null") },
      { name: "resolution with filter", doc: config("resolution", "320x240,scale=1:1") },
      { name: "negative bitrate", doc: config("video_bitrate", "-1M") },
      { name: "crf string", doc: config("crf", "0 -x264opts") },
    ]),
  );

  hardeningCase("filtergraph-names", async () => {
    const names = [
      "clips/it's [0:v];movie=x,scale=1:1.mp4",
      "clips/-i.mp4",
      "clips/a:b=c%d\\t.mp4".replace("\\", "_"),
    ];
    for (const name of names) place(h.root, name, tinyClip("red"));
    place(h.root, "songs/-y;[a].m4a", song(2));
    const taskId = await h.newTask();
    const doc = blueprint(
      taskId,
      names.map((clip, i) => ({ clip, duration: 0.4, transition: i === 0 ? "cut" : "crossfade" })),
      { audio_path: "songs/-y;[a].m4a" },
      "output/-y 'x';[a].mp4",
    ) as Record<string, any>;
    doc["moves"][0].clip_id = "[in];nullsrc,drawtext=text='%{pts}'";
    const run = await runCli({ env: jobEnv(h, taskId, doc) });
    await expectOutcome(h, run, taskId, "filtergraph-names");
    expect(probeVideo(path.join(h.root, "output/-y 'x';[a].mp4")).frames).toBe(36);
    rmSync(path.join(h.root, "output"), { recursive: true, force: true });
  });
});

describe("hostile media", () => {
  beforeEach(() => rmSync(path.join(h.root, "output"), { recursive: true, force: true }));

  async function mediaRun(
    id: string,
    moves: Array<{ clip: string; duration: number }>,
    songKey = "songs/song.m4a",
  ) {
    const taskId = await h.newTask();
    const doc = blueprint(taskId, moves, { audio_path: songKey });
    const run = await runCli({ env: jobEnv(h, taskId, doc), killAfterMs: 90_000 });
    const task = await expectOutcome(h, run, taskId, id, { outputKey: `output/${taskId}.mp4` });
    if (task.status === "failed") expectNoOutput(h);
    return { run, task, output: path.join(h.root, `output/${taskId}.mp4`) };
  }

  hardeningCase("media-truncated", async () => {
    place(h.root, "clips/truncated.mp4", HOSTILE.truncated());
    await mediaRun("media-truncated", [
      { clip: "clips/red.mp4", duration: 0.5 },
      { clip: "clips/truncated.mp4", duration: 0.5 },
    ]);
  });

  hardeningCase("media-truncated-faststart", async () => {
    place(h.root, "clips/truncated-faststart.mp4", HOSTILE.truncatedFaststart());
    const { task, output } = await mediaRun("media-truncated-faststart", [
      { clip: "clips/truncated-faststart.mp4", duration: 1 },
    ]);
    expect(probeVideo(output).frames).toBe(30);
    // The index promises a full second: the job cannot know frames are missing, so no warning.
    expect(task.result?.["warnings"]).toEqual([]);
  });

  hardeningCase("media-text", async () => {
    place(h.root, "clips/text.mp4", HOSTILE.text());
    await mediaRun("media-text", [{ clip: "clips/text.mp4", duration: 0.5 }]);
  });

  hardeningCase("media-empty", async () => {
    place(h.root, "clips/empty.mp4", HOSTILE.empty());
    place(h.root, "songs/empty.m4a", HOSTILE.empty());
    await mediaRun("media-empty", [{ clip: "clips/empty.mp4", duration: 0.5 }]);
    await mediaRun("media-empty", [{ clip: "clips/red.mp4", duration: 0.5 }], "songs/empty.m4a");
  });

  hardeningCase("media-audio-only", async () => {
    place(h.root, "clips/audio-only.mp4", HOSTILE.audioOnly());
    await mediaRun("media-audio-only", [{ clip: "clips/audio-only.mp4", duration: 0.5 }]);
  });

  hardeningCase("media-image", async () => {
    place(h.root, "clips/image.png", HOSTILE.image());
    await mediaRun("media-image", [
      { clip: "clips/image.png", duration: 0.5 },
      { clip: "clips/red.mp4", duration: 0.5 },
    ]);
  });

  hardeningCase("media-video-as-song", async () => {
    place(h.root, "songs/silent-video.mp4", HOSTILE.silentVideo());
    await mediaRun(
      "media-video-as-song",
      [{ clip: "clips/red.mp4", duration: 0.5 }],
      "songs/silent-video.mp4",
    );
  });

  hardeningCase("media-4k", async () => {
    place(h.root, "clips/4k.mp4", HOSTILE.k4());
    const { output } = await mediaRun("media-4k", [{ clip: "clips/4k.mp4", duration: 0.5 }]);
    const probed = probeVideo(output);
    expect([probed.width, probed.height, probed.frames]).toEqual([1920, 1080, 15]);
  });

  hardeningCase("media-one-frame", async () => {
    place(h.root, "clips/one-frame.mp4", HOSTILE.oneFrame());
    const { output, task } = await mediaRun("media-one-frame", [
      { clip: "clips/one-frame.mp4", duration: 1 },
    ]);
    expect(probeVideo(output).frames).toBe(30);
    expect(((task.result?.["warnings"] ?? []) as unknown[]).length).toBeGreaterThan(0);
  });

  hardeningCase("media-60min-song", async () => {
    place(h.root, "songs/60min.m4a", HOSTILE.song60min());
    const { output, run } = await mediaRun(
      "media-60min-song",
      [
        { clip: "clips/red.mp4", duration: 1 },
        { clip: "clips/blue.mp4", duration: 1 },
      ],
      "songs/60min.m4a",
    );
    const probed = probeVideo(output);
    expect(probed.frames).toBe(60);
    expect(Math.abs(probed.audioDuration - 2)).toBeLessThan(0.05);
    expect(run.elapsedMs).toBeLessThan(60_000);
  });
});

describe("property-based fuzzing through the CLI", () => {
  const MUTATIONS = mutations(
    fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.double(),
      fc.string({ unit: "binary", maxLength: 12 }),
      fc.constantFrom(
        -1,
        0,
        0.01,
        1e308,
        1 / 30,
        "",
        "..",
        "/x",
        "clips/red.mp4",
        "clips/blue.mp4",
        "crossfade",
        "fade_white",
        "webm",
        "libx265",
        "9M",
        "1280x720",
        null,
        true,
        [],
        {},
      ),
    ),
  );
  const RUNS = Number(process.env["HARDENING_FUZZ_RUNS"] ?? 40);

  hardeningCase(
    "fuzz-validator",
    async () => {
      const seen = { invalid: 0, completed: 0, failed: 0 };
      await fc.assert(
        fc.asyncProperty(MUTATIONS, async (edits) => {
          const taskId = await h.newTask();
          const doc = base(taskId);
          // A changed task_id is the TASK_ID guard's case (trust-task-id).
          mutate(doc, edits, new Set(["task_id"]));
          const text = JSON.stringify(doc);
          const env = jobEnv(h, taskId, text);
          const expected = parseBlueprint(text, loadConfig(env).defaults);
          const run = await runCli({ env, killAfterMs: 60_000 });
          const task = await h.row(taskId);
          const context = `${text}\nexit ${run.code}\n${run.stderr}\n${JSON.stringify(task)}`;
          expect(run.signal, context).toBeNull();
          expect(run.stderr, context).not.toMatch(/\n\s+at /);
          expectNoTemp(h);
          if (!expected.ok) {
            seen.invalid++;
            const n = expected.issues.length;
            expect(run.code, context).toBe(2);
            expect(task.status, context).toBe("failed");
            expect(task.stage).toBe("validation");
            expect(task.error).toBe(
              storableText(
                `Invalid blueprint (${n} problem${n === 1 ? "" : "s"}): ${formatIssues(expected.issues, "; ")}`,
              ),
            );
            return;
          }
          // Valid: renders, or fails at run time with a code that is not INTERNAL.
          expect([0, 1], context).toContain(run.code);
          if (run.code === 0) {
            seen.completed++;
            expect(task.status, context).toBe("completed");
          } else {
            seen.failed++;
            expect(task.status, context).toBe("failed");
            expect(task.result?.["code"], context).not.toBe("INTERNAL");
          }
          rmSync(path.join(h.root, "output"), { recursive: true, force: true });
        }),
        { numRuns: RUNS },
      );
      // Report the mix (the property holds whatever it is).
      console.info(`fuzz-validator: ${JSON.stringify(seen)}`);
    },
    600_000,
  );
});

describe("secrets", () => {
  it("the database password appears in no output and no row of this file", async () => {
    expect(await expectNoSecrets(h)).toBeGreaterThan(50);
  });
});
