/**
 * Which demuxer may open a file of user media, chosen by the job from the file's first bytes
 * (docs/THREAT_MODEL.md). FFmpeg's own probing would pick HLS, DASH, ffconcat, image sequences or
 * SDP for a file that looks like one, and those demuxers open other files or the network. The job
 * accepts only plain containers, each opened with `-f <demuxer>` and `-protocol_whitelist file`.
 * Pure (no I/O): `probeMedia` reads the bytes.
 */
/** The plain containers the job opens, as FFmpeg demuxer names. */
export const ALLOWED_DEMUXERS = [
  "mov", // MP4, MOV, M4A, 3GP (ISO base media)
  "matroska", // Matroska, WebM
  "mpegts", // MPEG transport stream (188-byte packets)
  "avi",
  "mp3",
  "wav",
  "flac",
  "ogg",
  "aac", // ADTS AAC
] as const;

export type Demuxer = (typeof ALLOWED_DEMUXERS)[number];

/** Bytes read to decide: enough for an ID3v2 header, three TS packets and a MOV box header. */
export const SNIFF_BYTES = 4096;

const MOV_BOXES = new Set(["ftyp", "moov", "mdat", "free", "skip", "wide", "pnot", "uuid"]);

function ascii(bytes: Uint8Array, start: number, length: number): string {
  return String.fromCharCode(...bytes.subarray(start, start + length));
}

/** An MPEG audio frame header at `i`: 0xFFF sync; layer bits 00 → ADTS (AAC), else MPEG layer 1–3. */
function mpegAudioAt(bytes: Uint8Array, i: number): Demuxer | undefined {
  if (i + 1 >= bytes.length || bytes[i] !== 0xff || (bytes[i + 1]! & 0xf0) !== 0xf0) {
    // MPEG 2.5 (0xFFE) is still mp3.
    if (bytes[i] === 0xff && (bytes[i + 1]! & 0xe0) === 0xe0 && (bytes[i + 1]! & 0x06) !== 0) return "mp3";
    return undefined;
  }
  return (bytes[i + 1]! & 0x06) === 0 ? "aac" : "mp3";
}

/** Human names of the allowlist, for messages and docs. */
export const ALLOWED_CONTAINERS = "MP4/MOV/M4A, Matroska/WebM, MPEG-TS, AVI, MP3, WAV, FLAC, Ogg, ADTS AAC";

/** Why a file that is no allowed container is refused (the end of a user-facing message). */
function describeUnsupported(bytes: Uint8Array): string {
  const head = ascii(bytes, 0, Math.min(bytes.length, 512)).replace(/^\uFEFF/, "");
  const text = head.trimStart();
  const reference = (what: string) =>
    `it is ${what}, which makes FFmpeg open other files; only plain containers are accepted (${ALLOWED_CONTAINERS})`;
  if (text.startsWith("#EXT")) return reference("an HLS playlist");
  if (/<MPD[\s>]/.test(head)) return reference("a DASH manifest");
  if (text.startsWith("ffconcat") || /^file\s/m.test(text)) return reference("an FFmpeg concat script");
  if (/^v=0\r?$/m.test(text)) return reference("an SDP session description");
  if (bytes[0] === 0x89 && ascii(bytes, 1, 3) === "PNG") return "it is a still image (png), not a video";
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return "it is a still image (jpeg), not a video";
  if (ascii(bytes, 0, 3) === "GIF") return "it is a still image (gif), not a video";
  return `it is not in a container format the job opens (${ALLOWED_CONTAINERS})`;
}

/**
 * The demuxer for a file starting with `bytes`, or why it is refused. Pure: used by `sniffFile`
 * and by tests.
 */
export function sniffContainer(bytes: Uint8Array): { demuxer: Demuxer } | { refused: string } {
  if (bytes.length >= 8 && MOV_BOXES.has(ascii(bytes, 4, 4))) return { demuxer: "mov" };
  if (bytes[0] === 0x1a && bytes[1] === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3)
    return { demuxer: "matroska" };
  if (ascii(bytes, 0, 4) === "RIFF") {
    const kind = ascii(bytes, 8, 4);
    if (kind === "AVI ") return { demuxer: "avi" };
    if (kind === "WAVE") return { demuxer: "wav" };
  }
  if (ascii(bytes, 0, 4) === "fLaC") return { demuxer: "flac" };
  if (ascii(bytes, 0, 4) === "OggS") return { demuxer: "ogg" };
  if (bytes.length >= 377 && bytes[0] === 0x47 && bytes[188] === 0x47 && bytes[376] === 0x47)
    return { demuxer: "mpegts" };
  if (ascii(bytes, 0, 3) === "ID3" && bytes.length >= 10) {
    // ID3v2: a syncsafe size, then the first audio frame.
    const size =
      ((bytes[6]! & 0x7f) << 21) |
      ((bytes[7]! & 0x7f) << 14) |
      ((bytes[8]! & 0x7f) << 7) |
      (bytes[9]! & 0x7f);
    const first = 10 + size + ((bytes[5]! & 0x10) !== 0 ? 10 : 0);
    // A tag longer than what was read: the mp3 demuxer skips it (it reads no other file).
    if (first >= bytes.length) return { demuxer: "mp3" };
    return { demuxer: mpegAudioAt(bytes, first) ?? "mp3" };
  }
  const audio = mpegAudioAt(bytes, 0);
  if (audio !== undefined) return { demuxer: audio };
  return { refused: describeUnsupported(bytes) };
}

/**
 * Input options that open `file` with exactly `demuxer` and local files only (the demuxer follows no
 * references: none in the allowlist does). `-max_pixels` makes decoders refuse pictures larger than
 * the job decodes, even if a stream grows after the probe.
 */
export function pinnedInput(file: string, demuxer: Demuxer): string[] {
  return ["-f", demuxer, "-protocol_whitelist", "file", "-max_pixels", String(MAX_PIXELS), "-i", file];
}

/** Largest picture the job decodes: a side and the pixel count (8K UHD is 7680×4320 = 33.2 MP). */
export const MAX_SIDE = 8192;
export const MAX_PIXELS = 36_000_000;
