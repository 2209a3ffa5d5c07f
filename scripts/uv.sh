# Sourced by scripts/bootstrap.sh and scripts/lock.sh: puts the uv that uv.lock pins (the `tools` group) on
# $UV, installed with the lock's hashes into a cache of its own, so that nothing else is resolved to get it.
UV_VERSION=$(python3 - <<'PY'
import tomllib
lock = tomllib.load(open("uv.lock", "rb"))
print(next(p["version"] for p in lock["package"] if p["name"] == "uv"))
PY
)
UV_HOME=${XDG_CACHE_HOME:-$HOME/.cache}/rerank-operator/uv-$UV_VERSION
UV=$UV_HOME/bin/uv
# uv never downloads a Python of its own here: the project's environments use this machine's python3.
export UV_PYTHON_DOWNLOADS=never
if [ ! -x "$UV" ]; then
  uv_requirements=$(mktemp)
  python3 - "$uv_requirements" <<'PY'
import sys, tomllib
lock = tomllib.load(open("uv.lock", "rb"))
uv = next(p for p in lock["package"] if p["name"] == "uv")
hashes = " ".join(f"--hash={w['hash']}" for w in uv["wheels"])
open(sys.argv[1], "w").write(f"uv=={uv['version']} {hashes}\n")
PY
  rm -rf "$UV_HOME"
  python3 -m venv "$UV_HOME"
  if ! "$UV_HOME/bin/python" -m pip install -q --disable-pip-version-check --require-hashes --only-binary=:all: \
      -r "$uv_requirements"; then
    rm -rf "$UV_HOME" "$uv_requirements"
    echo "bootstrap: could not install uv $UV_VERSION (pinned with its hashes in uv.lock) from the package index" >&2
    exit 1
  fi
  rm -f "$uv_requirements"
fi
