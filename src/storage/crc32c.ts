/**
 * CRC32C (Castagnoli), the checksum GCS keeps for every object, computed slice-by-8: eight table
 * lookups per 8 bytes instead of one per byte. About 1 GB/s on one core, five times the SDK's
 * byte-at-a-time `CRC32C` class, which made the check the largest CPU cost of a warm job's downloads.
 */
const POLYNOMIAL = 0x82f63b78; // reflected 0x1EDC6F41

/** Table k (k = 0…7) at offset 256·k: the CRC of a byte followed by k zero bytes. */
const TABLES = (() => {
  const t = new Int32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLYNOMIAL : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) {
      const previous = t[(k - 1) * 256 + n]!;
      t[k * 256 + n] = (previous >>> 8) ^ t[previous & 0xff]!;
    }
  }
  return t;
})();

/** Extends `crc` (a finished CRC32C, 0 for none yet) over `bytes`. */
export function crc32cUpdate(crc: number, bytes: Uint8Array): number {
  const t = TABLES;
  let c = ~crc;
  const length = bytes.length;
  const end = length - (length & 7);
  let i = 0;
  for (; i < end; i += 8) {
    const low = c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
    c =
      t[1792 + (low & 0xff)]! ^
      t[1536 + ((low >>> 8) & 0xff)]! ^
      t[1280 + ((low >>> 16) & 0xff)]! ^
      t[1024 + (low >>> 24)]! ^
      t[768 + bytes[i + 4]!]! ^
      t[512 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^
      t[bytes[i + 7]!]!;
  }
  for (; i < length; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** A CRC32C as GCS writes it in object metadata and `x-goog-hash`: 4 bytes big-endian, base64. */
export function crc32cBase64(crc: number): string {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(crc >>> 0);
  return bytes.toString("base64");
}
