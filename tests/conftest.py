"""Shared fixtures: the local Kubernetes control plane and the CPU vLLM engine, each started once per session
and only when a test asks for it."""

pytest_plugins = ["tests.fixtures.cluster", "tests.fixtures.engine", "tests.fixtures.node", "tests.fixtures.registry"]
