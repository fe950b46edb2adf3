import { describe, expect, it } from "vitest";
import type { AssemblyItem } from "../../src/media/assembly.js";
import {
  assemblyOutputPieces,
  checkCopiedAudio,
  checkPackets,
  decodeRanges,
  fromKeyframes,
  type OutputPiece,
  type ProbedPacket,
} from "../../src/media/output-check.js";

const FPS = 30;
/** 60 frames, a keyframe every 15, audio alongside. */
function packets(edit: (video: ProbedPacket[]) => void = () => {}): ProbedPacket[] {
  const video: ProbedPacket[] = Array.from({ length: 60 }, (_, n) => ({
    stream: "video",
    pts: n / FPS,
    dts: n / FPS,
    keyframe: n % 15 === 0,
    hash: `h${n}`,
  }));
  edit(video);
  const audio: ProbedPacket[] = Array.from({ length: 10 }, (_, n) => ({
    stream: "audio",
    pts: n * 0.2,
    dts: n * 0.2,
    keyframe: true,
  }));
  return [...video, ...audio];
}
const pieces: OutputPiece[] = [
  { startFrame: 0, frames: 15, encoded: true },
  {
    startFrame: 15,
    frames: 30,
    encoded: false,
    copy: {
      key: "clips/a.mp4",
      fromFrame: 30,
      packetHashes: Array.from({ length: 90 }, (_, i) => `h${i - 15}`),
    },
  },
  { startFrame: 45, frames: 15, encoded: true },
];

describe("packet-level output check", () => {
  it("passes an output made as planned", () => {
    expect(checkPackets(packets(), pieces, 60, FPS)).toEqual([]);
  });
  it("finds a piece that starts without a keyframe, a copied frame that differs, a gap, reordered dts", () => {
    expect(
      checkPackets(
        packets((v) => (v[45]!.keyframe = false)),
        pieces,
        60,
        FPS,
      ),
    ).toEqual(["frame 45 starts a piece but is not a keyframe"]);
    expect(
      checkPackets(
        packets((v) => (v[20]!.hash = "other")),
        pieces,
        60,
        FPS,
      )[0],
    ).toContain("frame 20 is not the packet it was copied from (frame 35 of the cache entry of clips/a.mp4)");
    expect(
      checkPackets(
        packets((v) => (v[30]!.pts += 1 / FPS)),
        pieces,
        60,
        FPS,
      )[0],
    ).toMatch(/apart/);
    expect(
      checkPackets(
        packets((v) => (v[31]!.dts = 0)),
        pieces,
        60,
        FPS,
      )[0],
    ).toMatch(/go backwards at packet 31/);
    expect(
      checkPackets(
        packets().filter((p) => p.stream === "video"),
        pieces,
        60,
        FPS,
      ),
    ).toContain("it has no audio packets");
  });
  it("decodes the encoded pieces and a margin around each join, from the keyframe before", () => {
    const ranges = decodeRanges(pieces, 60, 3);
    expect(ranges).toEqual([
      { from: 0, to: 18 },
      { from: 42, to: 60 },
    ]);
    // One copied piece: its start and end are still decoded.
    expect(decodeRanges([{ startFrame: 0, frames: 60, encoded: false }], 60, 3)).toEqual([
      { from: 0, to: 3 },
      { from: 57, to: 60 },
    ]);
    const keyframes = Array.from({ length: 60 }, (_, n) => n % 15 === 0);
    expect(fromKeyframes(ranges, keyframes)).toEqual([
      { from: 0, to: 18 },
      { from: 30, to: 60 },
    ]);
  });
  it("skips the margin before a join, and the last frames, where they are a copy of a decode-verified entry", () => {
    const keyframes = Array.from({ length: 90 }, (_, n) => n % 15 === 0);
    const copy = (startFrame: number, frames: number, decodeVerified: boolean): OutputPiece => ({
      startFrame,
      frames,
      encoded: false,
      copy: {
        key: "clips/a.mp4",
        fromFrame: startFrame,
        packetHashes: Array.from({ length: 90 }, (_, i) => `h${i}`),
        decodeVerified,
      },
    });
    // As in a warm assembly: a copied body, a 15-frame window, the next copied body.
    const shape = (verified: boolean): OutputPiece[] => [
      copy(0, 30, verified),
      { startFrame: 30, frames: 15, encoded: true },
      copy(45, 45, verified),
    ];
    const verifiedRanges = decodeRanges(shape(true), 90, 3);
    // The window, 3 frames after each join (and the first 3): nothing before the join into the window.
    expect(verifiedRanges).toEqual([
      { from: 0, to: 3 },
      { from: 30, to: 48 },
    ]);
    expect(fromKeyframes(verifiedRanges, keyframes)).toEqual(verifiedRanges);
    // The same output from entries without `decoded`: before the joins and at the end, from the keyframe before.
    const olderRanges = decodeRanges(shape(false), 90, 3);
    expect(olderRanges).toEqual([
      { from: 0, to: 3 },
      { from: 27, to: 48 },
      { from: 87, to: 90 },
    ]);
    expect(fromKeyframes(olderRanges, keyframes)).toEqual([
      { from: 0, to: 3 },
      { from: 15, to: 48 },
      { from: 75, to: 90 },
    ]);
    // A join right after a short encoded piece: only the margin's frames outside the verified copy.
    expect(
      decodeRanges(
        [copy(0, 30, true), { startFrame: 30, frames: 1, encoded: true }, copy(31, 59, true)],
        90,
        3,
      ),
    ).toEqual([
      { from: 0, to: 3 },
      { from: 30, to: 34 },
    ]);
    // One verified copied piece: its first frames only.
    expect(decodeRanges([copy(0, 90, true)], 90, 3)).toEqual([{ from: 0, to: 3 }]);
    // Frames of the encoded pieces are always decoded, whatever the margin.
    expect(decodeRanges(shape(true), 90, 0)).toEqual([{ from: 30, to: 45 }]);
  });

  it("marks copies of decode-verified entries as such", () => {
    const items: AssemblyItem[] = [
      { kind: "copy", move: 0, key: "clips/a.mp4", startFrame: 0, frames: 30, fromFrame: 0, toFrame: 30 },
      { kind: "copy", move: 1, key: "clips/b.mp4", startFrame: 30, frames: 30, fromFrame: 15, toFrame: 45 },
      { kind: "copy", move: 2, key: "clips/c.mp4", startFrame: 60, frames: 15, fromFrame: 0, toFrame: 15 },
    ];
    const hashes = Array.from({ length: 60 }, (_, i) => `SHA256:${i}`);
    const pieces = assemblyOutputPieces(
      items,
      new Map([
        ["clips/a.mp4", { packetHashes: hashes, decodeVerified: true }],
        ["clips/b.mp4", { packetHashes: hashes, decodeVerified: false }],
        ["clips/c.mp4", { decodeVerified: true }],
      ]),
    );
    expect(pieces.map((p) => [p.encoded, p.copy?.decodeVerified])).toEqual([
      [false, true],
      [false, false],
      // No packet hashes: it cannot be vouched for, so it is decoded whatever its entry's sidecar says.
      [true, undefined],
    ]);
  });
});

describe("audio copied from the cached song", () => {
  const audio = (hashes: string[]): ProbedPacket[] =>
    hashes.map((hash, i) => ({ stream: "audio", pts: i * 0.02, dts: i * 0.02, keyframe: true, hash }));
  const video: ProbedPacket = { stream: "video", pts: 0, dts: 0, keyframe: true, hash: "SHA256:v" };

  it("passes when every audio packet is the song's, in order (the join may drop its last ones)", () => {
    expect(checkCopiedAudio([video, ...audio(["a", "b", "c"])], ["a", "b", "c"])).toEqual([]);
    expect(checkCopiedAudio(audio(["a", "b"]), ["a", "b", "c"])).toEqual([]);
  });

  it("names the first packet that differs, a missing hash, or packets the song does not have", () => {
    expect(checkCopiedAudio(audio(["a", "x", "c"]), ["a", "b", "c"])).toEqual([
      "audio packet 1 is not the packet it was copied from (the cached song's)",
    ]);
    expect(checkCopiedAudio([{ ...audio(["a"])[0]!, hash: undefined }], ["a"])).toHaveLength(1);
    expect(checkCopiedAudio(audio(["a", "b", "c"]), ["a", "b"])).toEqual([
      "it has 3 audio packets, more than the 2 of the encoded song",
    ]);
  });
});
