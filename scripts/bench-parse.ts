/**
 * Micro-benchmark (not a test): parse + validate a 500-move blueprint, SPEC §7 target < 10 ms.
 * `npm run bench:parse [-- ITERATIONS]`
 */
import { parseBlueprint } from "../src/blueprint/parse.js";
import type { BlueprintDefaults } from "../src/blueprint/types.js";

const MOVES = 500;
const WARMUP = 200;
const iterations = Number(process.argv[2] ?? 1000);

const defaults: BlueprintDefaults = {
  output_format: "mp4",
  video_codec: "libx264",
  audio_codec: "aac",
  audio_bitrate: "128k",
  crf: 23,
  preset: "veryfast",
  frame_rate: 30,
};

const TRANSITIONS = ["cut", "crossfade", "fade_black", "fade_white"] as const;
const moves = Array.from({ length: MOVES }, (_, index) => ({
  clip_id: `move_${index + 1}`,
  video_path: `Bachata_steps/step_${index % 40}/clip_${index % 7}.mp4`,
  start_time: index * 7.2,
  duration: 7.2,
  transition_type: TRANSITIONS[index % TRANSITIONS.length],
  original_duration: 8,
  trim_start: 0.4,
  trim_end: 0.4,
  volume_adjustment: 1,
}));
const text = JSON.stringify({
  task_id: "0b4c6f1e-7d2a-4c55-9a0e-3f1d2c4b5a69",
  audio_path: "songs/Amor.mp3",
  audio_tempo: 129.2,
  moves,
  total_duration: MOVES * 7.2,
  difficulty_level: "intermediate",
  generation_timestamp: "2025-11-09T12:34:56Z",
  generation_parameters: { energy_level: "medium", style: "sensual", user_id: 1 },
  output_config: {
    output_path: "output/choreography_bench.mp4",
    output_format: "mp4",
    video_codec: "libx264",
    audio_codec: "aac",
    frame_rate: 30,
    transition_duration: 0.5,
    fade_duration: 0.3,
    normalize_audio: true,
  },
});

function once(): number {
  const started = performance.now();
  const result = parseBlueprint(text, defaults);
  const elapsed = performance.now() - started;
  if (!result.ok) throw new Error(`benchmark blueprint is invalid: ${JSON.stringify(result.issues[0])}`);
  return elapsed;
}

for (let i = 0; i < WARMUP; i++) once();
const samples = Array.from({ length: iterations }, once).sort((a, b) => a - b);
const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
process.stdout.write(
  `parse + validate, ${MOVES} moves, ${(text.length / 1024).toFixed(0)} KiB JSON, ${iterations} runs: ` +
    `median ${at(0.5).toFixed(3)} ms, p95 ${at(0.95).toFixed(3)} ms, max ${at(1).toFixed(3)} ms\n`,
);
