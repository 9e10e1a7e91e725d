#!/usr/bin/env bash
# Make sure a FerretDB binary exists and print its path on stdout (progress goes to stderr).
# Same lookup as ensureFerretDBBinary() in lib/embedded.ts:
#   1. $PTS_FERRETDB_BIN if set (must be executable);
#   2. ${PTS_CACHE_DIR:-~/.cache/persistent-task-status}/ferretdb-1.24.2/ferretdb if present;
#   3. otherwise build tools/ferretdb with Go into that path (temp name + atomic mv, so concurrent
#      runs are safe). Idempotent: a second run only prints the path.
set -euo pipefail

FERRETDB_VERSION=1.24.2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(cd "$here/.." && pwd)/tools/ferretdb"

log() { printf '[ensure-ferretdb] %s\n' "$*" >&2; }

if [[ -n "${PTS_FERRETDB_BIN:-}" ]]; then
  if [[ -f "$PTS_FERRETDB_BIN" && -x "$PTS_FERRETDB_BIN" ]]; then
    printf '%s\n' "$PTS_FERRETDB_BIN"
    exit 0
  fi
  log "PTS_FERRETDB_BIN=$PTS_FERRETDB_BIN is not an executable file"
  exit 1
fi

cache_dir="${PTS_CACHE_DIR:-$HOME/.cache/persistent-task-status}"
# bump BUILD_REV whenever tools/ferretdb changes, so caches rebuild
BUILD_REV=serial1
target="$cache_dir/ferretdb-$FERRETDB_VERSION-$BUILD_REV/ferretdb"
if [[ -f "$target" && -x "$target" ]]; then
  log "using cached $target"
  printf '%s\n' "$target"
  exit 0
fi

go_bin=""
for candidate in "$(command -v go 2>/dev/null || true)" "${GOROOT:+$GOROOT/bin/go}" /usr/local/go/bin/go /usr/lib/go/bin/go; do
  if [[ -n "$candidate" && -x "$candidate" ]]; then
    go_bin="$candidate"
    break
  fi
done

if [[ -z "$go_bin" || ! -f "$src/go.mod" ]]; then
  log "cannot provide FerretDB $FERRETDB_VERSION. Tried: PTS_FERRETDB_BIN (not set); cached binary $target (missing);" \
    "go toolchain (${go_bin:-not found on PATH, \$GOROOT/bin, /usr/local/go/bin, /usr/lib/go/bin}); sources $src/go.mod ($([[ -f "$src/go.mod" ]] && echo found || echo missing))"
  exit 1
fi

mkdir -p "$(dirname "$target")"
tmp="$target.tmp-$$-$RANDOM"
trap 'rm -f "$tmp"' EXIT
log "building FerretDB $FERRETDB_VERSION from $src with $go_bin ($("$go_bin" version)); first build takes ~1-2 min"
start=$SECONDS
(cd "$src" && GOWORK=off "$go_bin" build -trimpath -o "$tmp" .) >&2
chmod 755 "$tmp"
mv -f "$tmp" "$target"
log "built $target in $((SECONDS - start)) s"
printf '%s\n' "$target"
