#!/usr/bin/env bash
# What `npm install persistent-task-status mongoose` costs a library user, and what
# `require('persistent-task-status')` loads. Numbers for docs/performance.md, section
# "Package size and load time".
#
#   scripts/measure-package.sh              # this checkout (npm pack runs the build)
#   scripts/measure-package.sh 18866f5      # a commit: temporary git worktree, npm ci, npm pack; removed afterwards
#
# For each: `npm pack`, then in an empty project `npm install <tarball> mongoose@^9` (with
# --ignore-scripts, so mongodb-memory-server's postinstall mongod download is NOT counted), then
#   - installed size: `du -sk node_modules`
#   - packages:       `npm ls --all --parseable` lines below node_modules (unique paths)
#   - load:           5 fresh `node` processes, each timing `require('persistent-task-status')` with
#                     process.hrtime around the call and counting `require.cache` keys; median printed.
# mongoose alone is measured the same way in the same project, as the floor.
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
ref="${1:-}"
runs=5
work="$(mktemp -d "${TMPDIR:-/tmp}/pts-measure-XXXXXX")"
worktree=""

cleanup() {
  if [ -n "$worktree" ]; then git -C "$repo_root" worktree remove --force "$worktree" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

src="$repo_root"
if [ -n "$ref" ]; then
  worktree="$work/checkout"
  git -C "$repo_root" worktree add --detach "$worktree" "$ref" >/dev/null 2>&1
  (cd "$worktree" && npm ci --no-audit --no-fund --ignore-scripts >/dev/null 2>&1)
  src="$worktree"
fi

label="${ref:-$(git -C "$repo_root" rev-parse --short HEAD) + working tree}"
(cd "$src" && npm pack --json --pack-destination "$work" 2>/dev/null) >"$work/pack.json"
tgz="$(ls "$work"/*.tgz)"

mkdir "$work/app"
cd "$work/app"
echo '{ "name": "pts-measure", "private": true }' >package.json
npm install --no-audit --no-fund --ignore-scripts --prefer-offline "$tgz" 'mongoose@^9' >/dev/null 2>&1

# median of $runs fresh processes; prints "<ms> <modules>"
load() {
  local spec="$1"
  for _ in $(seq "$runs"); do
    node -e "
      const t = process.hrtime.bigint();
      require('$spec');
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      console.log(ms.toFixed(1), Object.keys(require.cache).length);"
  done | sort -n | sed -n "$(((runs + 1) / 2))p"
}

echo "## $label"
node -e "
  const [p] = require('$work/pack.json');
  console.log('tarball:            ' + (p.size / 1024).toFixed(0) + ' KiB packed, ' + (p.unpackedSize / 1024).toFixed(0) + ' KiB unpacked, ' + p.entryCount + ' files');"
echo "node_modules:       $(du -sk node_modules | cut -f1) KiB ($(du -sh node_modules | cut -f1))"
echo "packages:           $(npm ls --all --parseable 2>/dev/null | grep /node_modules/ | sort -u | wc -l)"
echo "mongodb-memory-server installed: $([ -d node_modules/mongodb-memory-server ] && echo yes || echo no)"
read -r ms mods <<<"$(load persistent-task-status)"
echo "require('persistent-task-status'):         ${ms} ms, ${mods} modules (median of $runs)"
read -r ms mods <<<"$(load mongoose)"
echo "require('mongoose') alone:                 ${ms} ms, ${mods} modules (median of $runs)"
for entry in server testing; do
  if node -e "require.resolve('persistent-task-status/$entry')" >/dev/null 2>&1; then
    read -r ms mods <<<"$(load "persistent-task-status/$entry")"
    echo "require('persistent-task-status/$entry'): ${ms} ms, ${mods} modules (median of $runs)"
  fi
done
