#!/usr/bin/env bash
# The Dockerfile's steps without Docker: copy what the image copies, `npm ci`, build, prune to production
# dependencies, then run the job from the pruned tree on a small generated blueprint (local storage,
# embedded PostgreSQL) and check the video and the exit code.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
app="$work/app"
data="$work/data"
mkdir -p "$app" "$data/clips" "$data/songs"

cp package.json package-lock.json tsconfig.json tsconfig.build.json "$app/"
cp -r src sql "$app/"
(cd "$app" && npm ci --no-audit --no-fund --loglevel=error && npm run -s build && npm prune --omit=dev --no-audit --no-fund --loglevel=error)

ff() { ffmpeg -hide_banner -v error -y "$@"; }
ff -f lavfi -i "testsrc2=s=320x240:r=30:d=2" -c:v libx264 -preset ultrafast -pix_fmt yuv420p "$data/clips/a.mp4"
ff -f lavfi -i "smptebars=s=240x320:r=25:d=2" -c:v libx264 -preset ultrafast -pix_fmt yuv420p "$data/clips/b.mp4"
ff -f lavfi -i "sine=f=440:d=3:sample_rate=48000" -ac 2 -c:a aac "$data/songs/song.m4a"

cat > "$work/blueprint.json" <<'JSON'
{
  "task_id": "container-steps-0001",
  "audio_path": "songs/song.m4a",
  "moves": [
    {"video_path": "clips/a.mp4", "start_time": 0, "duration": 1.5, "transition_type": "cut"},
    {"video_path": "clips/b.mp4", "start_time": 1.5, "duration": 1.5, "transition_type": "crossfade"}
  ],
  "total_duration": 3,
  "output_config": {"output_path": "output/container.mp4", "transition_duration": 0.5}
}
JSON

(cd "$app" && env -i PATH="$PATH" HOME="$work" TMPDIR="$work" LOCAL_STORAGE_ROOT="$data" LOG_FORMAT=json \
  NODE_ENV=production node dist/main.js --blueprint "$work/blueprint.json" > "$work/job.log") || {
  echo "job from the pruned production tree failed:"; tail -n 20 "$work/job.log"; exit 1;
}
frames=$(ffprobe -v error -count_packets -select_streams v:0 -show_entries stream=nb_read_packets -of csv=p=0 "$data/output/container.mp4")
if [ "$frames" != "90" ]; then echo "expected 90 frames, found $frames"; exit 1; fi
echo "container steps: npm ci, build, prune, job run from production dependencies: ok ($frames frames)"
