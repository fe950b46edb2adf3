/**
 * Absorbs moves too short to render (SPEC §3.1). The API's generator fills each song section with moves of
 * `min(clip, remaining)`, so a section often ends in a remainder shorter than two frames (seen: 0.046 s,
 * 0.00025 s, and float noise near 1e-15 s). Such a move is merged into a neighbour — the previous move
 * when there is one, else the next — and the blueprint carries a warning. Pure; runs once, in parse.ts.
 *
 * Frame boundaries are those of the plan (`round(start·F)`; the last move ends at `round(end·F)`), so the
 * output keeps exactly `round(total·F)` frames and every move that stays keeps its start frame.
 */
import { formatSeconds } from "./issues.js";
import { LIMITS } from "./schema.js";
import type { Move } from "./types.js";

export interface Absorbed {
  moves: Move[];
  warnings: string[];
}

/** Output frame index of a time, robust to binary noise (8.1·30 = 242.99999…); the plan uses the same. */
function frameAt(seconds: number, fps: number): number {
  return Math.round(Number((seconds * fps).toFixed(6)));
}

/** Room for floating-point noise in frame arithmetic (e.g. `0.1 * 30`). */
const EPSILON = 1e-6;

function name(index: number, move: Move): string {
  return `moves[${index}] (${move.clip_id})`;
}

/**
 * Returns the moves with every short one merged into a neighbour. A move is short when its duration is
 * under `LIMITS.minMoveFrames` frames or its frame span (start to the next move's start) is. The caller
 * guarantees the whole timeline spans at least that many frames, so at least one move remains.
 */
export function absorbShortMoves(moves: readonly Move[], fps: number): Absorbed {
  const minFrames = LIMITS.minMoveFrames;
  const last = moves[moves.length - 1];
  if (last === undefined) return { moves: [], warnings: [] };
  const end = last.start_time + last.duration;
  const bounds = moves.map((move) => frameAt(move.start_time, fps));
  bounds.push(frameAt(end, fps));
  const isShort = moves.map(
    (move, i) => move.duration * fps < minFrames - EPSILON || bounds[i + 1]! - bounds[i]! < minFrames,
  );
  if (!isShort.includes(true)) return { moves: [...moves], warnings: [] };

  const describe = (i: number) => {
    const move = moves[i]!;
    return `${name(i, move)} lasts ${formatSeconds(move.duration)} s (${formatSeconds(move.duration * fps)} frames at ${formatSeconds(fps)} fps), shorter than ${minFrames} frames`;
  };
  const kept: { move: Move; index: number }[] = [];
  const warnings: string[] = [];
  /** Short moves at the start, waiting for the first move long enough to take them. */
  const leading: number[] = [];

  moves.forEach((move, i) => {
    const previous = kept[kept.length - 1];
    if (isShort[i] && previous !== undefined) {
      // Lengthen the previous move to this one's end; its start (and beat) is unchanged.
      const next = moves[i + 1];
      const until = next === undefined ? end : next.start_time;
      previous.move = { ...previous.move, duration: until - previous.move.start_time };
      warnings.push(`${describe(i)}: merged into ${name(previous.index, previous.move)}`);
      return;
    }
    if (isShort[i] && i < moves.length - 1) {
      leading.push(i);
      return;
    }
    if (leading.length === 0) {
      kept.push({ move, index: i });
      return;
    }
    // The first long move starts where the timeline starts and keeps the first move's transition
    // (a transition on the first move is a fade-in, not a blend with the dropped remainder).
    const first = moves[leading[0]!]!;
    const until = i + 1 < moves.length ? moves[i + 1]!.start_time : end;
    const merged: Move = {
      ...move,
      start_time: first.start_time,
      duration: until - first.start_time,
      transition_type: first.transition_type,
    };
    delete merged.transition_duration;
    if (first.transition_duration !== undefined) merged.transition_duration = first.transition_duration;
    for (const index of leading) warnings.push(`${describe(index)}: merged into ${name(i, move)}`);
    leading.length = 0;
    kept.push({ move: merged, index: i });
  });
  return { moves: kept.map((entry) => entry.move), warnings };
}
