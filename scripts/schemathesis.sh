#!/usr/bin/env bash
# Property-based API testing from the outside: schemathesis (PyPI) reads the
# served OpenAPI document and drives every operation with generated valid and
# invalid input against a real `storefort serve --demo` on SQLite. Fails on
# any 5xx, undocumented status code, wrong content type, response that does
# not match its schema, or invalid input that was accepted. Bounded in time.
#
# Usage: scripts/schemathesis.sh path/to/storefort [seconds]
set -euo pipefail
bin=${1:?usage: $0 path/to/storefort [seconds]}
seconds=${2:-60}
venv=${STOREFORT_SCHEMATHESIS_VENV:-$HOME/.cache/storefort-schemathesis}
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==4.32.5"
fi

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# An owner and an API token for the staff routes. Without a second factor
# (which only a person can enroll) those answer 403, which is documented.
echo 'schemathesis-owner-passphrase-2026' |
  "$bin" admin create --email owner@example.com --role owner --password-stdin --data-dir "$dir/data" >/dev/null
token=$("$bin" admin token --email owner@example.com --scope read_orders --scope manage_orders \
  --scope edit_catalog --scope change_prices --scope read_security_events --days 1 --data-dir "$dir/data")
"$bin" serve --demo --data-dir "$dir/data" --listen "127.0.0.1:$port" >"$dir/stdout" 2>"$dir/stderr" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
[ -n "$token" ] || { echo "no API token printed" >&2; exit 1; }

# schemathesis keeps a cache in its working directory: keep it out of the tree.
cd "$dir"
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --url "http://127.0.0.1:$port" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection \
  --max-time "$seconds" --workers 2 --seed 20261126 --no-color
