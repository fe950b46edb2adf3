/**
 * A last-in-first-out cleanup stack (graphile-worker's `withReleasers` model): whatever a stage
 * acquires registers its release right away; `withCleanup` runs every release in reverse order
 * when the job ends, even after an error or when another release fails, and rethrows the first
 * release error (after the job's own outcome is settled).
 */
export type Release = () => Promise<void> | void;

export interface CleanupStack {
  /** Registers `release` to run when the job ends (before everything registered earlier). */
  defer(release: Release): void;
}

export async function withCleanup<T>(body: (cleanup: CleanupStack) => Promise<T>): Promise<T> {
  const releases: Release[] = [];
  const cleanup: CleanupStack = { defer: (release) => void releases.push(release) };
  let outcome: { value: T } | { error: unknown };
  try {
    outcome = { value: await body(cleanup) };
  } catch (error) {
    outcome = { error };
  }
  let releaseError: { error: unknown } | undefined;
  for (const release of releases.reverse()) {
    try {
      await release();
    } catch (error) {
      releaseError ??= { error };
    }
  }
  if ("error" in outcome) throw outcome.error;
  if (releaseError !== undefined) throw releaseError.error;
  return outcome.value;
}
