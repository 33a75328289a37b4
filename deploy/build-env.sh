# Sourced by every script that builds Quiver (deploy/run.sh, tests/run-all.sh, bench/*.sh): what
# a fresh Debian machine with Rust needs before `cargo build`, and where the build output goes.
#
#   source "$repo/deploy/build-env.sh"      # then: ensure_packages extra-package ...

# Builds are shared across clones (CI runs in a fresh clone): never `cargo clean` this.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quiver/target}"

# Installs the Debian packages (apt-get, as root) of those named that are not installed yet.
ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# clang / libclang-dev: librocksdb-sys runs bindgen, which needs libclang; libssl-dev /
# pkg-config: librdkafka's TLS (the ingest workers, which the server can run too). `protoc` is
# vendored.
ensure_packages clang libclang-dev libssl-dev pkg-config
