# Sourced by try.sh and test.sh: run from the repository, as root, with cargo
# on PATH, and the Debian packages stepbox needs installed.
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "$(basename "$0"): run it as root (containers need namespaces): sudo $0" >&2; exit 125; }
# Under sudo, root's PATH usually lacks the invoking user's rustup toolchain.
if ! command -v cargo >/dev/null && [ -n "${SUDO_USER:-}" ]; then
  home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  export PATH="$home/.cargo/bin:$PATH" RUSTUP_HOME="${RUSTUP_HOME:-$home/.rustup}" CARGO_HOME="${CARGO_HOME:-$home/.cargo}"
fi
command -v cargo >/dev/null || { echo "$(basename "$0"): cargo not found: install the Rust toolchain (rustup) first" >&2; exit 125; }
scripts/install-deps.sh
