"""The operator's peering identity needs no passwd entry: the chart runs it as uid 65532, which the image does not
list (a real node crashed it with `KeyError: getpwuid(): uid not found: 65532` before this)."""

from __future__ import annotations

import socket

from rerank_operator.cli import peering_identity


def test_the_identity_names_the_pod_and_reads_no_user_database(monkeypatch):
    import getpass
    import pwd

    def no_user(*_args):
        raise KeyError("getpwuid(): uid not found: 65532")

    monkeypatch.setattr(getpass, "getuser", no_user)
    monkeypatch.setattr(pwd, "getpwuid", no_user)
    assert peering_identity() == f"rerank-operator@{socket.gethostname()}"
