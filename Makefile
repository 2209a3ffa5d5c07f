# The two entry points of the README. Both install what they need first (scripts/bootstrap.sh), and both build
# the local Kubernetes control plane from source on first use (cached under ~/.cache/rerank-operator/bin).
.PHONY: local test venv binaries
VENV ?= .venv

venv:
	./scripts/bootstrap.sh

binaries: venv
	$(VENV)/bin/python -m rerank_localdev.binaries ensure

local: binaries
	$(VENV)/bin/rerank-operator local

# The browser tests need Debian's Chromium: installed here, not for `make local`.
test: binaries
	WITH_BROWSER=1 ./scripts/bootstrap.sh
	$(VENV)/bin/python -m pytest
