/**
 * docs/RELIABILITY.md stays current: its table is generated from cases.ts, and every case there is
 * exercised by a test. `UPDATE_RELIABILITY=1 npx vitest run test/hardening/docs.test.ts` rewrites it.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CASES, renderTable } from "./cases.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DOC = path.resolve(HERE, "..", "..", "docs", "RELIABILITY.md");
const BEGIN = "<!-- cases:begin (generated from test/hardening/cases.ts) -->";
const END = "<!-- cases:end -->";

describe("docs/RELIABILITY.md", () => {
  it("every case has exactly one test, and every test's case exists", () => {
    const sources = readdirSync(HERE)
      .filter((name) => /\.(test|load)\.ts$/.test(name))
      .map((name) => readFileSync(path.join(HERE, name), "utf8"))
      .join("\n");
    const used = [...sources.matchAll(/hardeningCase\(\s*"([^"]+)"/g)].map((m) => m[1]);
    const ids = CASES.map((c) => c.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...used].sort()).toEqual([...ids].sort());
  });

  it("holds the table generated from the cases", () => {
    const doc = readFileSync(DOC, "utf8");
    const start = doc.indexOf(BEGIN);
    const end = doc.indexOf(END);
    expect(start, "markers present").toBeGreaterThan(-1);
    expect(end).toBeGreaterThan(start);
    const current = doc.slice(start + BEGIN.length, end).trim();
    const table = renderTable();
    if (current !== table && process.env["UPDATE_RELIABILITY"] === "1") {
      writeFileSync(DOC, `${doc.slice(0, start + BEGIN.length)}\n${table}\n${doc.slice(end)}`);
      return;
    }
    expect(current, "run UPDATE_RELIABILITY=1 npx vitest run test/hardening/docs.test.ts").toBe(table);
  });
});
