"""The local demo's fixed inputs agree with each other: the sample RerankerDeployment is a valid
spec, asks for the claim and directory the demo offers, and needs no GPU."""

from __future__ import annotations

import pytest
import yaml

from rerank_operator.api.v1alpha1 import parse_spec
from rerank_localdev import demo


def test_the_sample_is_valid_and_matches_what_the_demo_offers():
    sample = yaml.safe_load(demo.SAMPLE.read_text())
    spec = parse_spec(sample["spec"])
    assert spec.model.pvc is not None
    assert spec.model.pvc.claim_name == demo.MODEL_CLAIM
    assert spec.model.pvc.path == demo.MODEL_DIR_NAME
    # A CPU engine: it runs on any node, the simulated GPU node only shows GPU scheduling.
    assert spec.engine.device == "cpu" and spec.engine.gpus == 0
    assert any(not n.get("gpus") for n in demo.NODES)
    assert spec.ui.enabled


@pytest.mark.parametrize(("argv", "smoke"), [([], False), (["--smoke"], True)])
def test_flags(argv, smoke):
    args = demo.parse_args(argv + ["--port", "18000", "--ui-port", "17860"])
    assert (args.smoke, args.port, args.ui_port) == (smoke, 18000, 17860)


def test_smoke_and_keep_running_exclude_each_other():
    with pytest.raises(SystemExit):
        demo.parse_args(["--smoke", "--keep-running"])
