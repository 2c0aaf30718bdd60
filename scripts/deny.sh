#!/usr/bin/env bash
# Dependency policy: licenses, bans and sources, and known vulnerabilities
# checked offline against the RustSec advisory database snapshot in
# ../shared/advisory-db (CI has no route to GitHub to fetch the live one).
set -euo pipefail
cd "$(dirname "$0")/.."
snapshot=${STOREFORT_ADVISORY_DB:-../shared/advisory-db}
if ! command -v cargo-deny >/dev/null; then
  cargo install --locked cargo-deny@0.20.2
fi
# cargo-deny reads its database from a git checkout named after the
# database URL; make one from the snapshot's plain files.
db=target/advisory-dbs/advisory-db-3157b0e258782691
if [ ! -d "$db/.git" ] || [ "$snapshot/SNAPSHOT" -nt "$db/.git" ]; then
  rm -rf "$db"
  mkdir -p "$db"
  cp -R "$snapshot"/. "$db"/
  git -C "$db" init -q
  git -C "$db" add -A
  GIT_AUTHOR_DATE="2026-08-21T00:00:00Z" GIT_COMMITTER_DATE="2026-08-21T00:00:00Z" \
    git -C "$db" -c user.name=ci -c user.email=ci@localhost commit -qm "RustSec snapshot"
fi
cargo fetch --locked >/dev/null
cargo deny --offline check
