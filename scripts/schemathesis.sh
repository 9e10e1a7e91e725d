#!/usr/bin/env bash
# Schemathesis against a real `pts serve` (scripts/schemathesis-target.mjs starts FerretDB, a token and
# the server from dist/; run `npm run build` first). Installs schemathesis and openapi-spec-validator from
# PyPI into a venv under ~/.cache/persistent-task-status/venv, validates /openapi.json with
# openapi-spec-validator, then runs every operation (the SSE streams are excluded from generation: a
# stream never ends) with the checks not_a_server_error, status_code_conformance,
# response_schema_conformance, content_type_conformance. Bounded: MAX_EXAMPLES per operation (default
# 20) and `timeout` around the run (ST_TIMEOUT, default 300 s). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv="${PTS_SCHEMATHESIS_VENV:-$HOME/.cache/persistent-task-status/venv}"
max_examples="${MAX_EXAMPLES:-20}"
st_timeout="${ST_TIMEOUT:-300}"
report_dir="${ST_REPORT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pts-schemathesis.XXXXXX")}"
mkdir -p "$report_dir"

if [[ ! -x "$venv/bin/schemathesis" || ! -x "$venv/bin/openapi-spec-validator" ]]; then
  echo "installing schemathesis and openapi-spec-validator into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4.3,<5' 'openapi-spec-validator>=0.7'
fi
echo "schemathesis: $("$venv/bin/schemathesis" --version)"

if [[ ! -f dist/lib/cli/main.js ]]; then npm run build; fi

target_out="$report_dir/target.out"
node scripts/schemathesis-target.mjs >"$target_out" 2>"$report_dir/target.log" &
target_pid=$!
cleanup() {
  if kill -0 "$target_pid" 2>/dev/null; then
    kill -TERM "$target_pid" 2>/dev/null || true
    wait "$target_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
for _ in $(seq 1 240); do
  [[ -s "$target_out" ]] && break
  if ! kill -0 "$target_pid" 2>/dev/null; then
    echo "ERROR: the target did not start:" >&2
    tail -n 30 "$report_dir/target.log" >&2
    exit 1
  fi
  sleep 0.5
done
read -r url token <"$target_out" || true
if [[ -z "${url:-}" || -z "${token:-}" ]]; then
  echo "ERROR: the target did not start in time:" >&2
  tail -n 30 "$report_dir/target.log" >&2
  exit 1
fi
echo "target: $url (logs: $report_dir)"

curl -fsS "$url/openapi.json" -o "$report_dir/openapi.json"
"$venv/bin/openapi-spec-validator" "$report_dir/openapi.json"

set +e
timeout --kill-after=10 "$st_timeout" "$venv/bin/schemathesis" run "$url/openapi.json" \
  --url "$url" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
  --exclude-path-regex '/events$' \
  --max-examples "$max_examples" \
  --request-timeout 35 \
  --seed "${ST_SEED:-1}" \
  --generation-database none \
  --no-color \
  --report junit --report-dir "$report_dir" \
  ${ST_EXTRA_ARGS:-}
rc=$?
set -e
if [[ $rc -eq 124 || $rc -eq 137 ]]; then echo "ERROR: schemathesis did not finish within ${st_timeout} s" >&2; fi
echo "schemathesis exited with $rc (report: $report_dir)"
exit $rc
