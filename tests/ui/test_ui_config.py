"""Environment → Settings: defaults, parsing, and errors that name the variable."""

from pathlib import Path

import pytest

from rerank_ui.config import (
    DEFAULT_INSTRUCTION,
    ConfigError,
    Settings,
    health_url_for,
    load_settings,
    normalize_endpoint,
)


def test_defaults_when_environment_is_empty():
    settings = load_settings({})
    assert settings == Settings()
    assert settings.endpoint == "http://127.0.0.1:8000/v1/rerank"
    assert settings.health_url == "http://127.0.0.1:8000/health"
    assert settings.default_instruction == DEFAULT_INSTRUCTION
    assert settings.auth is None
    assert settings.status_file is None
    assert settings.server_port == 7860


def test_reads_every_variable():
    settings = load_settings({
        "RERANK_ENDPOINT": "http://qwen3-reranker.search.svc:8000/v1/rerank",
        "RERANK_MODEL": "qwen3-reranker",
        "RERANK_DEFAULT_INSTRUCTION": "  Find code that answers the question  ",
        "RERANK_MAX_DOCUMENTS": "20",
        "RERANK_MAX_DOCUMENT_CHARS": "500",
        "RERANK_TIMEOUT_SECONDS": "2.5",
        "RERANK_CONCURRENCY_LIMIT": "3",
        "RERANK_QUEUE_MAX_SIZE": "10",
        "RERANK_MAX_UPLOAD_BYTES": "2048",
        "RERANK_STATUS_FILE": "/etc/rerank/status.json",
        "RERANK_UI_USERNAME": "ann",
        "RERANK_UI_PASSWORD": "s3cret",
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": "9000",
    })
    assert settings.endpoint == "http://qwen3-reranker.search.svc:8000/v1/rerank"
    assert settings.health_url == "http://qwen3-reranker.search.svc:8000/health"
    assert settings.model == "qwen3-reranker"
    assert settings.default_instruction == "Find code that answers the question"
    assert (settings.max_documents, settings.max_document_chars) == (20, 500)
    assert settings.timeout_seconds == 2.5
    assert (settings.concurrency_limit, settings.queue_max_size, settings.max_upload_bytes) == (3, 10, 2048)
    assert settings.status_file == Path("/etc/rerank/status.json")
    assert settings.auth == ("ann", "s3cret")
    assert (settings.server_name, settings.server_port) == ("127.0.0.1", 9000)


def test_empty_instruction_is_allowed():
    assert load_settings({"RERANK_DEFAULT_INSTRUCTION": ""}).default_instruction == ""


@pytest.mark.parametrize("raw, expected", [
    ("http://x.ns.svc:8000/v1/rerank", "http://x.ns.svc:8000/v1/rerank"),
    ("http://x.ns.svc:8000", "http://x.ns.svc:8000/v1/rerank"),
    ("http://x.ns.svc:8000/", "http://x.ns.svc:8000/v1/rerank"),
    ("  http://10.0.0.5:8000/v1  ", "http://10.0.0.5:8000/v1/rerank"),
    ("https://gateway.example.com/search/rerank/", "https://gateway.example.com/search/rerank"),
])
def test_endpoint_is_the_url_posted_to(raw, expected):
    assert normalize_endpoint(raw) == expected


@pytest.mark.parametrize("endpoint, health", [
    ("http://x.ns.svc:8000/v1/rerank", "http://x.ns.svc:8000/health"),
    ("http://x.ns.svc:8000/v2/rerank", "http://x.ns.svc:8000/health"),
    ("https://gw.example.com/search/rerank", "https://gw.example.com/search/health"),
    ("https://gw.example.com/score-api", "https://gw.example.com/health"),
])
def test_health_url_sits_beside_the_rerank_route(endpoint, health):
    assert health_url_for(endpoint) == health


@pytest.mark.parametrize("raw", ["x.ns.svc:8000", "ftp://x:21", "http://", "http://host:notaport",
                                 "http://x:8000/v1/rerank?debug=1"])
def test_bad_endpoint_names_the_variable(raw):
    with pytest.raises(ConfigError, match="RERANK_ENDPOINT"):
        load_settings({"RERANK_ENDPOINT": raw})


@pytest.mark.parametrize("name, value, fragment", [
    ("RERANK_MAX_DOCUMENTS", "many", "whole number"),
    ("RERANK_MAX_DOCUMENTS", "0", "between 1 and"),
    ("RERANK_MAX_DOCUMENT_CHARS", "-5", "between"),
    ("RERANK_TIMEOUT_SECONDS", "soon", "number of seconds"),
    ("RERANK_TIMEOUT_SECONDS", "0", "between"),
    ("RERANK_CONCURRENCY_LIMIT", "1.5", "whole number"),
    ("GRADIO_SERVER_PORT", "70000", "between 1 and 65535"),
])
def test_bad_numbers_name_the_variable(name, value, fragment):
    with pytest.raises(ConfigError, match=name) as excinfo:
        load_settings({name: value})
    assert fragment in str(excinfo.value)


@pytest.mark.parametrize("env, missing", [
    ({"RERANK_UI_USERNAME": "ann"}, "RERANK_UI_PASSWORD"),
    ({"RERANK_UI_PASSWORD": "s3cret"}, "RERANK_UI_USERNAME"),
])
def test_half_configured_auth_is_refused(env, missing):
    with pytest.raises(ConfigError, match=f"{missing} is empty"):
        load_settings(env)
