"""kwok's stage configuration: the defaults as shipped, and local mode's variant that leaves
pods Running but not Ready (the pod runner reports readiness)."""

from __future__ import annotations

import difflib

import yaml

from rerank_localdev.controlplane import KWOK_POD_STARTED_STAGE, KWOK_STAGES, kwok_stages


def _by_name(text: str) -> dict:
    return {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(text) if doc}


def test_default_stages_are_kwoks_file():
    assert kwok_stages() == KWOK_STAGES.read_text()


def test_local_variant_swaps_only_the_pod_ready_stage():
    defaults, local = _by_name(KWOK_STAGES.read_text()), _by_name(kwok_stages(pods_ready_on_start=False))
    assert list(local) == list(defaults)
    assert {n for n in defaults if local[n] != defaults[n]} == {"pod-ready"}
    assert local["pod-ready"] == yaml.safe_load(KWOK_POD_STARTED_STAGE.read_text())


def test_pod_started_stage_differs_from_kwoks_only_in_readiness():
    # Guards a kwok upgrade: if kwok's pod-ready stage changes, the copy must follow.
    kwok = _by_name(KWOK_STAGES.read_text())["pod-ready"]
    ours = yaml.safe_load(KWOK_POD_STARTED_STAGE.read_text())
    assert ours["spec"]["selector"] == kwok["spec"]["selector"]
    ours_template = ours["spec"]["next"].pop("statusTemplate").splitlines()
    kwok_template = kwok["spec"]["next"].pop("statusTemplate").splitlines()
    assert ours["spec"]["next"] == kwok["spec"]["next"]
    diff = [line for line in difflib.ndiff(kwok_template, ours_template) if line[:2] in ("- ", "+ ")]
    ready_false = ['+   status: "False"', '+   reason: ContainersNotReady',
                   '+   message: "local mode: the pod runner has not seen the readiness probe pass yet"']
    # Ready and ContainersReady flip to False with a reason; the containers are not ready yet.
    # Initialized, the readiness gates and the init containers stay as kwok writes them.
    assert diff == (['-   status: "True"'] + ready_false) * 2 + ['-   ready: true', '+   ready: false']
