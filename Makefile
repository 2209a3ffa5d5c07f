# The two entry points of the README. Both install what they need first (scripts/bootstrap.sh).
.PHONY: local test bootstrap
VENV ?= .venv

bootstrap:
	WITH_BROWSER=1 ./scripts/bootstrap.sh

local:
	./scripts/bootstrap.sh
	$(VENV)/bin/rerank-operator local

test: bootstrap
	$(VENV)/bin/python -m pytest
