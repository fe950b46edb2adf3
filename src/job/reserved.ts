import type { Config } from "../config.js";

/** Directories the job itself keeps under the storage root: the clip cache and the embedded database. */
export function reservedPrefixes(config: Config): string[] {
  const cache = config.clipCachePrefix.replace(/^\/+|\/+$/g, "");
  return [...new Set([cache, ".pgdata"].filter((prefix) => prefix !== ""))];
}

/** Why `output` may not be written (inside the clip cache or the embedded database), if so. */
export function reservedOutputProblem(output: string, config: Config): string | undefined {
  const key = output.replace(/^data\//, "");
  for (const prefix of reservedPrefixes(config)) {
    if (key === prefix || key.startsWith(`${prefix}/`)) {
      return `expected a path outside ${prefix}/ (the job's ${prefix === ".pgdata" ? "embedded database" : "clip cache"}), found ${JSON.stringify(output)}`;
    }
  }
  return undefined;
}
