/** Pinned demuxers: the job picks the container from the file's bytes and refuses anything else. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALLOWED_DEMUXERS, pinnedInput, sniffContainer } from "../../src/media/containers.js";
import { probeMedia } from "../../src/media/probe.js";
import { clipFixture } from "../helpers/fixtures.js";

const text = (s: string) => new TextEncoder().encode(s);

describe("sniffContainer (pure)", () => {
  it("refuses playlists, manifests, concat scripts, SDP and images, saying what they are", () => {
    expect(sniffContainer(text("#EXTM3U\n#EXTINF:1,\n/etc/x.mp4\n"))).toEqual({
      refused: expect.stringContaining("an HLS playlist, which makes FFmpeg open other files"),
    });
    expect(
      sniffContainer(text('<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011">')),
    ).toEqual({ refused: expect.stringContaining("a DASH manifest") });
    expect(sniffContainer(text("ffconcat version 1.0\nfile 'a.mp4'\n"))).toEqual({
      refused: expect.stringContaining("an FFmpeg concat script"),
    });
    expect(sniffContainer(text("v=0\no=- 0 0 IN IP4 127.0.0.1\n"))).toEqual({
      refused: expect.stringContaining("an SDP session description"),
    });
    expect(sniffContainer(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 13, 10, 26, 10]))).toEqual({
      refused: "it is a still image (png), not a video",
    });
    expect(sniffContainer(text("hello"))).toEqual({
      refused: expect.stringMatching(/^it is not in a container format the job opens \(MP4\/MOV/),
    });
    expect(sniffContainer(new Uint8Array())).toHaveProperty("refused");
  });

  it("tells ADTS AAC from MP3 frames, also after an ID3 tag", () => {
    expect(sniffContainer(new Uint8Array([0xff, 0xf1, 0x50, 0x80]))).toEqual({ demuxer: "aac" });
    expect(sniffContainer(new Uint8Array([0xff, 0xfb, 0x90, 0x64]))).toEqual({ demuxer: "mp3" });
    const id3 = new Uint8Array([0x49, 0x44, 0x33, 4, 0, 0, 0, 0, 0, 2, 0, 0, 0xff, 0xf1, 0x50, 0x80]);
    expect(sniffContainer(id3)).toEqual({ demuxer: "aac" });
  });

  it("opens inputs with the demuxer, local files only and a pixel cap", () => {
    expect(pinnedInput("/w/a.mkv", "matroska")).toEqual([
      "-f",
      "matroska",
      "-protocol_whitelist",
      "file",
      "-max_pixels",
      "36000000",
      "-i",
      "/w/a.mkv",
    ]);
  });
});

describe("probeMedia with pinned demuxers (real ffprobe)", () => {
  let dir: string;
  const make = (name: string, args: string[]) => {
    const file = path.join(dir, name);
    execFileSync("ffmpeg", ["-hide_banner", "-nostdin", "-v", "error", "-y", ...args, file]);
    return file;
  };
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "containers-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads every allowed container and records the demuxer it chose", async () => {
    const video = ["-f", "lavfi", "-i", "testsrc2=s=64x48:r=10:d=1", "-pix_fmt", "yuv420p"];
    const sound = ["-f", "lavfi", "-i", "sine=d=1"];
    const files: Array<[string, string[], string]> = [
      ["a.mkv", [...video, "-c:v", "libx264"], "matroska"],
      ["a.webm", [...video, "-c:v", "libvpx-vp9", "-deadline", "realtime"], "matroska"],
      ["a.ts", [...video, "-c:v", "libx264"], "mpegts"],
      ["a.avi", [...video, "-c:v", "mpeg4"], "avi"],
      ["a.mp3", [...sound, "-c:a", "libmp3lame"], "mp3"],
      ["a.wav", sound, "wav"],
      ["a.flac", sound, "flac"],
      ["a.ogg", [...sound, "-c:a", "libvorbis"], "ogg"],
      ["a.aac", [...sound, "-c:a", "aac", "-f", "adts"], "aac"],
      ["a.m4a", [...sound, "-c:a", "aac"], "mov"],
    ];
    for (const [name, args, demuxer] of files) {
      const info = await probeMedia(make(name, args), `media/${name}`);
      expect(info.demuxer, name).toBe(demuxer);
      expect(info.duration, name).toBeGreaterThan(0.5);
    }
    expect((await probeMedia(clipFixture("yellow"), "clips/y.mp4")).demuxer).toBe("mov");
    expect(ALLOWED_DEMUXERS).toHaveLength(9);
  });

  it("refuses an HLS playlist named .mp4 without ffprobe following it", async () => {
    const target = make("outside.mp4", [
      "-f",
      "lavfi",
      "-i",
      "color=c=magenta:s=64x48:d=1",
      "-c:v",
      "libx264",
    ]);
    const playlist = path.join(dir, "x.mp4");
    writeFileSync(playlist, `#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n${target}\n#EXT-X-ENDLIST\n`);
    await expect(probeMedia(playlist, "clips/x.mp4", { kind: "clip" })).rejects.toMatchObject({
      code: "MEDIA_INVALID",
      message: expect.stringMatching(/^Clip clips\/x\.mp4 is not a readable video: it is an HLS playlist/),
    });
  });

  it("refuses a picture larger than 8192 px a side or 36 MP, without decoding it", async () => {
    const huge = make("huge.mkv", [
      "-f",
      "lavfi",
      "-i",
      "color=c=blue:s=9000x64:d=0.2",
      "-frames:v",
      "1",
      "-c:v",
      "png",
    ]);
    await expect(probeMedia(huge, "clips/huge.mkv", { kind: "clip" })).rejects.toMatchObject({
      code: "MEDIA_INVALID",
      message: expect.stringContaining(
        "larger than the job decodes (at most 8192 pixels a side and 36 megapixels)",
      ),
    });
  });
});
