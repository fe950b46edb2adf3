/** Writes docs/blueprint.schema.json from the blueprint's zod schema (`npm run schema`). */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderBlueprintJsonSchema } from "../src/blueprint/schema.js";

const target = fileURLToPath(new URL("../docs/blueprint.schema.json", import.meta.url));
writeFileSync(target, renderBlueprintJsonSchema());
process.stdout.write("wrote docs/blueprint.schema.json\n");
