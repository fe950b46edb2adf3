import type { Stage } from "../errors.js";

/** Where each stage starts on the task row's progress scale (SPEC §5). */
export const STAGE_PROGRESS: Record<Stage, number> = {
  validation: 5,
  assembling: 10,
  fetching: 20,
  rendering: 40,
  uploading: 85,
  cleanup: 95,
  completed: 100,
};

/** Maps a fraction (0–1) of a stage's work onto its progress band, e.g. rendering 40–85. */
export function progressWithin(stage: "fetching" | "rendering" | "uploading", fraction: number): number {
  const bands = { fetching: [20, 40], rendering: [40, 85], uploading: [85, 95] } as const;
  const [from, to] = bands[stage];
  const clamped = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  return Math.floor(from + (to - from) * clamped);
}
