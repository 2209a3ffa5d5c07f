"""registryCredentials: a private registry's credentials become one kubernetes.io/dockerconfigjson Secret, pulled
with by the operator's pod and the sample's pods (its spec.imagePullSecrets); incomplete credentials are refused
by the values schema before anything is rendered."""

from __future__ import annotations

import base64
import json

from .chart import render, template, one

CREDENTIALS = {"server": "registry.example.com:5000", "username": "robot", "password": "s3cret"}


def test_credentials_become_one_pull_secret_for_the_operator_and_the_sample() -> None:
    objects = render({"registryCredentials": CREDENTIALS, "imagePullSecrets": [{"name": "mirror"}],
                      "sample": {"enabled": True, "spec": {"model": {"name": "Qwen/Qwen3-Reranker-0.6B"},
                                                           "imagePullSecrets": [{"name": "team"}]}}})
    secret = one(objects, "Secret")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config == {"auths": {"registry.example.com:5000": {
        "username": "robot", "password": "s3cret", "auth": base64.b64encode(b"robot:s3cret").decode()}}}
    name = secret["metadata"]["name"]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "mirror"}, {"name": name}]
    assert one(objects, "RerankerDeployment")["spec"]["imagePullSecrets"] == [{"name": "team"}, {"name": name}]


def test_no_server_no_secret_and_nothing_added() -> None:
    objects = render({"sample": {"enabled": True, "spec": {"model": {"name": "Qwen/Qwen3-Reranker-0.6B"}}}})
    assert not [o for o in objects if o["kind"] == "Secret"]
    assert "imagePullSecrets" not in one(objects, "Deployment")["spec"]["template"]["spec"]
    assert "imagePullSecrets" not in one(objects, "RerankerDeployment")["spec"]


def test_a_server_without_credentials_is_refused_naming_the_field() -> None:
    proc = template({"registryCredentials": {"server": "registry.example.com"}}, check=False)
    assert proc.returncode != 0
    assert "/registryCredentials/username" in proc.stderr and "/registryCredentials/password" in proc.stderr
    proc = template({"registryCredentials": {**CREDENTIALS, "server": "https://registry.example.com"}}, check=False)
    assert proc.returncode != 0 and "/registryCredentials/server" in proc.stderr
