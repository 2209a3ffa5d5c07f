# Sourced by scripts/bootstrap.sh and scripts/lock.sh: puts the uv that uv.lock pins (the `tools` group) on
# $UV, installed with the lock's hashes into a cache of its own, so that nothing else is resolved to get it.
# uv's pin as a hash-checked requirement line, read from the lock once.
uv_requirement=$(python3 - <<'PY'
import tomllib
uv = next(p for p in tomllib.load(open("uv.lock", "rb"))["package"] if p["name"] == "uv")
print(f"uv=={uv['version']}", *(f"--hash={w['hash']}" for w in uv["wheels"]))
PY
)
uv_pin=${uv_requirement%% *}
[ "${uv_pin#uv==}" != "$uv_pin" ] || { echo "bootstrap: uv.lock pins no uv (the tools group)" >&2; exit 1; }
uv_home=${XDG_CACHE_HOME:-$HOME/.cache}/rerank-operator/uv-${uv_pin#uv==}
UV=$uv_home/bin/uv
# uv never downloads a Python of its own here: the project's environments use this machine's python3.
export UV_PYTHON_DOWNLOADS=never
if [ ! -x "$UV" ]; then
  rm -rf "$uv_home"
  python3 -m venv "$uv_home"
  if ! "$uv_home/bin/python" -m pip install -q --disable-pip-version-check --require-hashes --only-binary=:all: \
      -r /dev/stdin <<<"$uv_requirement"; then
    rm -rf "$uv_home"
    echo "bootstrap: could not install $uv_pin (pinned with its hashes in uv.lock) from the package index" >&2
    exit 1
  fi
fi
