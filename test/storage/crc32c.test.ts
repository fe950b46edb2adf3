import { randomBytes } from "node:crypto";
import { CRC32C } from "@google-cloud/storage";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { crc32cBase64, crc32cUpdate } from "../../src/storage/crc32c.js";

describe("crc32c", () => {
  it("gives the check values of RFC 3720 (iSCSI) and the classic '123456789'", () => {
    const crc = (bytes: Uint8Array) => crc32cUpdate(0, bytes);
    expect(crc(Buffer.from("123456789"))).toBe(0xe3069283);
    expect(crc(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(crc(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).toBe(0x113fdb5c);
    expect(crc(new Uint8Array(0))).toBe(0);
  });

  it("matches the SDK's CRC32C (what GCS metadata holds) over any split of any bytes", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.array(fc.nat({ max: 300 }), { maxLength: 6 }),
        (bytes, cuts) => {
          const reference = new CRC32C();
          reference.update(Buffer.from(bytes));
          let crc = 0;
          let start = 0;
          for (const cut of [
            ...cuts.map((c) => Math.min(c, bytes.length)).sort((a, b) => a - b),
            bytes.length,
          ]) {
            crc = crc32cUpdate(crc, bytes.subarray(start, Math.max(start, cut)));
            start = Math.max(start, cut);
          }
          expect(crc32cBase64(crc)).toBe(reference.toString());
        },
      ),
    );
  });

  it("matches the SDK on a large buffer streamed in 64 KiB chunks, and a changed byte changes it", () => {
    const data = randomBytes(1024 * 1024 + 13);
    const reference = new CRC32C();
    reference.update(data);
    let crc = 0;
    for (let i = 0; i < data.length; i += 65536) crc = crc32cUpdate(crc, data.subarray(i, i + 65536));
    expect(crc32cBase64(crc)).toBe(reference.toString());
    expect(reference.validate(crc32cBase64(crc))).toBe(true);
    data[data.length >> 1]! ^= 1;
    expect(crc32cBase64(crc32cUpdate(0, data))).not.toBe(reference.toString());
  });
});
