import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { blueprintJsonSchema, renderBlueprintJsonSchema } from "../../src/blueprint/schema.js";

const root = (relative: string) => fileURLToPath(new URL(`../../${relative}`, import.meta.url));

describe("docs/blueprint.schema.json", () => {
  it("is what `npm run schema` generates (run it after changing the schema)", () => {
    expect(readFileSync(root("docs/blueprint.schema.json"), "utf8")).toBe(renderBlueprintJsonSchema());
  });

  it("describes the input document: draft 2020-12, required fields, unknown fields allowed", () => {
    const schema = blueprintJsonSchema() as {
      $schema: string;
      required: string[];
      additionalProperties: unknown;
      properties: Record<string, { items?: { required: string[]; additionalProperties: unknown } }>;
    };
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(schema.required).toEqual(["task_id", "audio_path", "moves", "output_config"]);
    expect(schema.additionalProperties).toEqual({});
    expect(schema.properties["moves"]!.items!.required).toEqual(["video_path", "start_time", "duration"]);
    expect(schema.properties["moves"]!.items!.additionalProperties).toEqual({});
  });
});

describe("src/blueprint is pure", () => {
  const FORBIDDEN =
    /from "(node:|fs|path|child_process|pg|fluent-ffmpeg|@google-cloud\/|\.\.\/(config|log|storage|media|tasks|job)\b)/;

  it("imports no I/O module, config or log", () => {
    const dir = root("src/blueprint");
    const offenders = readdirSync(dir)
      .filter((name) => name.endsWith(".ts"))
      .flatMap((name) =>
        readFileSync(`${dir}/${name}`, "utf8")
          .split("\n")
          .filter((line) => FORBIDDEN.test(line))
          .map((line) => `${name}: ${line.trim()}`),
      );
    expect(offenders).toEqual([]);
  });
});
