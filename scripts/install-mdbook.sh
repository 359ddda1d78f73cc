#!/bin/sh
# Installs the pinned mdBook into <repo>/target/tools/bin/mdbook, from crates.io,
# unless that version is already there. The book is built with this binary only:
# a new mdBook release must not change (or break) the book behind our back.
set -eu

VERSION=0.5.4
ROOT="$(cd "$(dirname "$0")/.." && pwd)/target/tools"
BIN="$ROOT/bin/mdbook"

if [ -x "$BIN" ] && [ "$("$BIN" --version 2>/dev/null)" = "mdbook v$VERSION" ]; then
    echo "mdbook $VERSION: already installed at $BIN"
    exit 0
fi

printf 'mdbook %s: building from crates.io (takes a few minutes)... ' "$VERSION"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
start=$(date +%s)
# Only the search feature: `serve` and `watch` pull in tokio, axum and notify,
# which building the book does not need.
if ! cargo install mdbook --version "$VERSION" --locked --no-default-features \
    --features search --root "$ROOT" --force --quiet >"$log" 2>&1; then
    echo "failed:"
    cat "$log" >&2
    exit 1
fi
echo "done in $(($(date +%s) - start)) s: $BIN"
