#!/usr/bin/env bash
# Make sure a PostgreSQL server binary exists and print its bin directory on stdout (progress
# goes to stderr). Used only by `npm run bench:scale` (FerretDB's PostgreSQL handler for the
# million-task scale run); the tests never need PostgreSQL.
#   1. $PTS_PG_BIN_DIR if set (must contain initdb and postgres);
#   2. the newest /usr/lib/postgresql/*/bin with initdb and postgres;
#   3. otherwise `apt-get install -y postgresql` (Debian's server package; root or sudo needed).
set -euo pipefail

log() { printf '[ensure-postgres] %s\n' "$*" >&2; }

ok() { [[ -x "$1/initdb" && -x "$1/postgres" ]]; }

if [[ -n "${PTS_PG_BIN_DIR:-}" ]]; then
  if ok "$PTS_PG_BIN_DIR"; then printf '%s\n' "$PTS_PG_BIN_DIR"; exit 0; fi
  log "PTS_PG_BIN_DIR=$PTS_PG_BIN_DIR has no initdb/postgres"
  exit 1
fi

find_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if ok "$d"; then printf '%s\n' "$d"; return 0; fi
  done
  return 1
}

if find_bin; then exit 0; fi

log "no PostgreSQL server found; installing Debian's postgresql package"
sudo=""
if [[ "$(id -u)" != 0 ]]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else log "not root and no sudo: install postgresql yourself or set PTS_PG_BIN_DIR"; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
# The package's postinst creates and starts a default cluster on port 5432; the bench does not
# use it (it runs its own throwaway cluster), so stop it again where a service manager exists.
$sudo apt-get update -qq >&2 || log "apt-get update failed (continuing with the cached lists)"
$sudo apt-get install -y -qq postgresql >&2
if command -v pg_ctlcluster >/dev/null; then
  for v in $(ls /etc/postgresql 2>/dev/null); do $sudo pg_ctlcluster "$v" main stop >&2 2>/dev/null || true; done
fi
find_bin || { log "postgresql installed but no /usr/lib/postgresql/*/bin/postgres found"; exit 1; }
