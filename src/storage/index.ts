import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import { createGcsStorage } from "./gcs.js";
import { createLocalStorage } from "./local.js";
import type { Storage } from "./storage.js";

export type { FetchedFile, Storage, UploadOptions } from "./storage.js";

/** GCS mode when GCS_BUCKET_NAME is set, else local mode under LOCAL_STORAGE_ROOT (SPEC §2). */
export function createStorage(config: Config, logger: Logger): Storage {
  if (config.gcsBucket !== undefined && config.gcsBucket !== "") {
    logger.debug({ bucket: config.gcsBucket }, "Storage: GCS bucket");
    return createGcsStorage({
      bucket: config.gcsBucket,
      ...(config.gcpProjectId === undefined ? {} : { projectId: config.gcpProjectId }),
      logger,
    });
  }
  logger.debug({ root: config.localStorageRoot }, "Storage: local directory");
  return createLocalStorage({
    root: config.localStorageRoot,
    // Content hashes of unchanged sources are kept beside the clip cache (docs/decisions/clip-cache.md).
    ...(config.clipCache ? { hashMemoPrefix: config.clipCachePrefix } : {}),
  });
}
