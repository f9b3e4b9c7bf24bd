#!/usr/bin/env bash
# Installs what blockpipe needs to build, run and test, on Debian 12 (bookworm).
#   bash scripts/install-deps.sh          build + run dependencies, anvil for `make run`
#   bash scripts/install-deps.sh --test   the same plus the test extras
# Idempotent: when everything is already there it makes no network access at all.
# anvil (the EVM dev node) comes from npm into the project-local ./.local folder; with --test
# so do ganache 7 and Hardhat Network 2 (the other node implementations the tests run) and
# chDB's library (a current ClickHouse engine for test_clickhouse_current.py).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ANVIL_PKG="@foundry-rs/anvil-linux-amd64"
ANVIL_VERSION="1.7.1"
ANVIL_BIN="$ROOT/.local/node_modules/$ANVIL_PKG/bin/anvil"
# Test-only nodes, pinned: hardhat 3 needs Node.js 22, Debian 12 has 18 (a 2.x it is).
# chDB's libchdb.so is a current ClickHouse (26.5) engine in a library (166 MB download, 559 MB
# on disk): tests/tools/chdb_http.py serves it over HTTP for test_clickhouse_current.py, the
# schema on a current server (Debian's clickhouse-server is 18.16).
NODE_TEST_PKGS=("ganache@7.9.2" "hardhat@2.29.1" "@chdb/lib-linux-x64-gnu@26.5.3")

WITH_TEST=0
for arg in "$@"; do
  case "$arg" in
    --test) WITH_TEST=1 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "install-deps: unknown argument '$arg' (expected --test)" >&2; exit 2 ;;
  esac
done

say() { echo "install-deps: $*"; }

PKGS=(build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
      libcurl4-openssl-dev libyajl-dev libsqlite3-dev sqlite3 libyaml-dev
      libcmocka-dev libwebsockets-dev libpq-dev libmicrohttpd-dev libhiredis-dev libssl-dev
      librdkafka-dev zlib1g-dev python3 ca-certificates curl procps)
# Test extras: a PostgreSQL server for the postgres output's tests, a Redis server for the
# redis output's, a ClickHouse server (Debian's 18.16) for the clickhouse output's, the
# openssl command for the wss:// and rediss:// tests' certificates, promtool (prometheus) for
# /metrics, wrk for the API benchmark, chromium for the dashboard test; for the packaging
# test: yamllint (and python3-yaml) for compose.yaml, man-db to render the man page, systemd
# for `systemd-analyze verify` of the unit (no systemd needs to run), binutils (objdump) for
# the container's libraries. A test that misses one fails (it never skips). (Kafka needs no
# server: librdkafka's mock cluster.)
TEST_PKGS=(postgresql-15 redis-server clickhouse-server openssl prometheus wrk chromium
           yamllint python3-yaml man-db systemd binutils)

if [ "$WITH_TEST" = 1 ] && [ "${#TEST_PKGS[@]}" -gt 0 ]; then PKGS+=("${TEST_PKGS[@]}"); fi

# A machine may already have Node.js/npm (e.g. from /usr/local or another source):
# installing Debian's nodejs/npm over it could break it, so only add them when npm is missing.
if command -v npm >/dev/null 2>&1; then
  say "npm found at $(command -v npm) ($(npm --version 2>/dev/null || echo '?')), not installing Debian's nodejs/npm"
else
  PKGS+=(nodejs npm)
fi

missing=()
for p in "${PKGS[@]}"; do
  st="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
  case "$st" in *" installed") ;; *) missing+=("$p") ;; esac
done

SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=(sudo -n); fi
fi

if [ "${#missing[@]}" -eq 0 ]; then
  say "apt: all ${#PKGS[@]} packages already installed, skipping apt-get"
else
  say "apt: missing: ${missing[*]}"
  if [ "$(id -u)" != 0 ] && [ "${#SUDO[@]}" -eq 0 ]; then
    echo "install-deps: not root and no password-less sudo; as root, run:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  say "apt: apt-get update"
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get update -q >/dev/null
  say "apt: apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  say "apt: done"
fi

# anvil, pinned, project-local (git-ignored .local/).
if [ -x "$ANVIL_BIN" ] && "$ANVIL_BIN" --version >/dev/null 2>&1; then
  say "anvil: $("$ANVIL_BIN" --version | head -n1) already at ${ANVIL_BIN#"$ROOT"/}"
else
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-deps: npm not found after apt step; cannot install anvil" >&2
    exit 1
  fi
  say "anvil: npm install $ANVIL_PKG@$ANVIL_VERSION into .local/"
  mkdir -p "$ROOT/.local"
  npm install --prefix "$ROOT/.local" --no-audit --no-fund --loglevel=error \
    "$ANVIL_PKG@$ANVIL_VERSION" >/dev/null
  if ! "$ANVIL_BIN" --version >/dev/null 2>&1; then
    echo "install-deps: anvil installed but '$ANVIL_BIN --version' failed" >&2
    exit 1
  fi
  say "anvil: $("$ANVIL_BIN" --version | head -n1) installed"
fi
# ganache and hardhat for the tests, into the same .local/ (npm keeps what is there).
if [ "$WITH_TEST" = 1 ]; then
  want=()
  for spec in "${NODE_TEST_PKGS[@]}"; do
    name="${spec%@*}" version="${spec##*@}"
    pj="$ROOT/.local/node_modules/$name/package.json"
    # not there yet on a fresh clone: sed fails, and pipefail must not end the script
    have="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$pj" 2>/dev/null | head -n1 || true)"
    if [ "$have" = "$version" ]; then
      say "$name: $version already in .local/"
    else
      want+=("$spec")
    fi
  done
  if [ "${#want[@]}" -gt 0 ]; then
    say "npm install ${want[*]} into .local/"
    npm install --prefix "$ROOT/.local" --no-audit --no-fund --loglevel=error "${want[@]}" >/dev/null
  fi
fi
say "ok"
