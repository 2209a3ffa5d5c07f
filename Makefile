# The two entry points of the README. Both install what they need first (scripts/bootstrap.sh), and both build
# the local Kubernetes control plane from source on first use (cached under ~/.cache/rerank-operator/bin).
.PHONY: local test venv lock crd api-reference release-sync sweep binaries images push-images node-binaries tools
VENV ?= .venv

# The venvs install exactly what uv.lock says (scripts/bootstrap.sh refuses a lock that pyproject.toml has
# moved away from). `make lock` re-resolves it after a change to pyproject.toml and writes each image's
# requirements.txt from it; `make lock ARGS=--upgrade` (or ARGS='--upgrade-package NAME') moves versions.
venv:
	./scripts/bootstrap.sh

lock:
	./scripts/lock.sh $(ARGS)

# The chart's CRD is generated from the API models (operator/rerank_operator/api): after changing them,
# `make crd` rewrites it (tests/unit/api/test_api_crd.py fails until then). After changing the release version
# (operator/rerank_operator/version.py), `make release-sync` writes it into the chart and the CRD.
CRD := charts/rerank-operator/crds/rerankerdeployments.rerank.io.yaml
crd: venv
	$(VENV)/bin/python -m rerank_operator.api.crd > $(CRD).next && mv $(CRD).next $(CRD)
	$(VENV)/bin/python -m rerank_localdev.api_reference write

# The manual's API reference (docs/reference/api.md) is generated from that CRD (`make crd` rewrites both;
# tests/docs/test_docs_api_reference.py fails while the page differs).
api-reference: venv
	$(VENV)/bin/python -m rerank_localdev.api_reference write

release-sync: venv
	$(VENV)/bin/python -m rerank_localdev.release sync

# After a run on a real node that was killed before its teardown (SIGKILL, a lost terminal): removes the
# interfaces, routes, firewall rules, mounts, processes and cgroups it left (needs root, like the node).
sweep: venv
	$(VENV)/bin/python -m rerank_localdev.node.host sweep

binaries: venv
	$(VENV)/bin/python -m rerank_localdev.binaries ensure

# The real node's parts (kubelet, kube-proxy, containerd, CoreDNS, Traefik for the Ingress, ...) for tests/node, cached likewise,
# and kube-router's NetworkPolicy controller (its own cache: tests/node/test_node_network_policy.py).
node-binaries: venv
	$(VENV)/bin/python -m rerank_localdev.node.binaries ensure
	$(VENV)/bin/python -m rerank_localdev.node.netpol ensure

# The release tooling: CNCF Distribution's registry (the release tests' OCI registry), actionlint, Renovate's
# config validator (npm ci from localdev/rerank_localdev/renovate/package-lock.json), and Prometheus' promtool and
# server (the chart's alert rule tests and dashboard queries, tests/helm/test_helm_monitoring*.py).
tools: venv
	$(VENV)/bin/python -m rerank_localdev.tools ensure

# `make local` runs on one real node where this machine allows it (root, the kernel's overlayfs, bridge, veth and
# br_netfilter, writable cgroups: then the node's Debian parts and podman are installed first; the node's Go-built
# parts and the images are built on first use), else on simulated nodes. NODE=auto|real|simulated. Both decisions,
# what to install first and which nodes to run on, are rerank_localdev.node.capability's.
NODE ?= auto
local: binaries
	@if $(VENV)/bin/python -m rerank_localdev.node.capability machine $(NODE) >/dev/null; then \
	  WITH_NODE=1 WITH_IMAGES=1 ./scripts/bootstrap.sh; fi
	$(VENV)/bin/rerank-local --node $(NODE)

# The container images (every images/<name>/Dockerfile) as ghcr.io/rerank-operator/rerank-<name>:<version>,
# built with Debian's podman on a local Debian base (no Docker or registry needed): rerank_localdev/images.py.
images: venv
	WITH_IMAGES=1 ./scripts/bootstrap.sh
	$(VENV)/bin/python -m rerank_localdev.images build

# Pushes the built images to REGISTRY (HOST[:PORT][/PATH]) as <REGISTRY>/rerank-<name>:<version>; log in first
# (podman login). The release workflow pushes to ghcr.io/rerank-operator with `python -m rerank_localdev.release`.
push-images: venv
	$(VENV)/bin/python -m rerank_localdev.images push --registry $(REGISTRY)

# The browser tests need Debian's Chromium, the image tests podman, the node tests containerd's parts, the
# gateway tests Redis and litellm's own venv: installed here, not for `make local`.
test: binaries node-binaries tools
	WITH_BROWSER=1 WITH_IMAGES=1 WITH_NODE=1 WITH_TEST_SERVICES=1 ./scripts/bootstrap.sh
	$(VENV)/bin/python -m pytest
