#!/usr/bin/env bash
# `make lock`: re-resolves uv.lock from pyproject.toml (pass --upgrade or --upgrade-package NAME to move
# versions; without them only what pyproject.toml changed moves), then writes each image's Python layer from
# it. tests/unit/test_dependency_lock.py fails when either is out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/uv.sh

"$UV" lock "$@"
# Each image installs exactly its dependency group, hashes required (its Dockerfile says how).
for image in operator gateway ui engine-cpu; do
  group=image-${image%-cpu}
  "$UV" export --quiet --frozen --only-group "$group" --no-emit-project --output-file "images/$image/requirements.txt"
done
