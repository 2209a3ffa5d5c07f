"""The served page through gradio_client, wired to real loopback HTTP test servers that play an engine's
failure modes (refused connection, a slow answer, vLLM's 4xx/5xx bodies, a busy engine), plus input
errors, uploads, the concurrency limit, and the `rerank-ui` entry point with basic auth.
The page against the real vLLM engine is in test_ui_engine.py."""


import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.utils import QueueError, Status
from rerank_ui_harness import (
    Reply,
    closed_endpoint,
    echo_rerank,
    engine_test_server,
    running_ui,
    running_ui_process,
    status_file,
)

from rerank_ui.app import main
from tests.fixtures.waiting import wait_for
from rerank_ui.config import Settings


def rerank(client, query, documents, instruction="", top_n=0):
    return client.predict(query, documents, instruction, top_n, api_name="/rerank")


# --- a UI whose endpoint refuses connections ------------------------------------------------------------

@pytest.fixture(scope="module")
def ui_without_engine(tmp_path_factory):
    status = status_file(tmp_path_factory.mktemp("status"), ready=0, desired=3, conditions=[
        {"type": "Ready", "status": "False", "reason": "ModelLoading", "message": "model loading"}])
    settings = Settings(endpoint=closed_endpoint(), max_documents=3, max_document_chars=200, status_file=status)
    with running_ui(settings) as url:
        yield settings, Client(url, verbose=False)


def test_unreachable_endpoint_is_explained(ui_without_engine):
    settings, client = ui_without_engine
    error, usage, table, chart = rerank(client, "how to read csv", "pandas\ndask")
    assert f"The rerank endpoint {settings.endpoint} is unreachable (connection refused)" in error
    assert "RERANK_ENDPOINT" in error
    assert usage == ""
    assert table["data"] == [] and chart["data"] == []


def test_status_banner_reads_the_operators_status_file(ui_without_engine):
    _, client = ui_without_engine
    banner = client.predict(api_name="/status")
    assert banner == "⏳ **Model loading** — 0 of 3 replicas ready. Requests will fail until a replica is ready."


@pytest.mark.parametrize("query, documents, message", [
    ("", "pandas", "Enter a query"),
    ("how to read csv", "", "Add at least one document"),
    ("how to read csv", " \n\n  ", "Add at least one document"),
    ("how to read csv", "a\nb\nc\nd", "4 documents given; this deployment accepts at most 3"),
    ("how to read csv", "ok\n" + "x" * 201, "1 document(s) exceed 200 characters (line 2)"),
    ("q" * 201, "ok", "The query is 201 characters long"),
])
def test_input_errors_are_shown_before_calling_the_engine(ui_without_engine, query, documents, message):
    _, client = ui_without_engine
    error, usage, table, _ = rerank(client, query, documents)
    assert error.startswith("**Could not rerank.**")
    assert message in error
    assert "unreachable" not in error  # refused before any call
    assert table["data"] == []


def test_too_long_instruction_is_refused(ui_without_engine):
    _, client = ui_without_engine
    error, *_ = rerank(client, "q", "doc", instruction="i" * 201)
    assert "The instruction is 201 characters long; the limit is 200." in error


def test_csv_upload_fills_the_documents_box(ui_without_engine, tmp_path):
    _, client = ui_without_engine
    path = tmp_path / "candidates.csv"
    path.write_text('id,text\n1,"pandas read_csv\nwith chunksize"\n2,dask dataframe\n', encoding="utf-8")
    documents, error = client.predict(handle_file(str(path)), api_name="/load_upload")
    assert documents == "pandas read_csv with chunksize\ndask dataframe"
    assert error == ""


def test_jsonl_upload_fills_the_documents_box(ui_without_engine, tmp_path):
    _, client = ui_without_engine
    path = tmp_path / "candidates.jsonl"
    path.write_text('{"id": 1, "text": "polars scan_csv"}\n"csv.reader"\n', encoding="utf-8")
    documents, error = client.predict(handle_file(str(path)), api_name="/load_upload")
    assert (documents, error) == ("polars scan_csv\ncsv.reader", "")


@pytest.mark.parametrize("name, content, message", [
    ("broken.jsonl", '{"text": "ok"}\n{"text": \n', "broken.jsonl line 2 is not valid JSON"),
    ("wide.csv", "a,b\nc,d\n", "wide.csv has 2 columns but no header naming the document column"),
    ("many.txt", "1\n2\n3\n4\n", "The file holds 4 documents; this deployment accepts at most 3"),
])
def test_malformed_upload_is_explained(ui_without_engine, tmp_path, name, content, message):
    _, client = ui_without_engine
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    documents, error = client.predict(handle_file(str(path)), api_name="/load_upload")
    assert error.startswith("**Could not read the file.**")
    assert message in error
    assert documents == {"__type__": "update"}  # gr.skip(): the documents box keeps what it held


# --- a UI wired to a scripted engine test server ---------------------------------------------------------

VLLM_400 = {"error": {"message": "Please reduce the length of the input.", "type": "BadRequestError",
                      "param": None, "code": 400}}
VLLM_503 = {"error": {"message": "The engine is loading the model", "type": "ServiceUnavailableError", "code": 503}}


def scripted_engine(body: dict) -> Reply:
    """What the test server answers depends on the query, so one UI can meet every behaviour."""
    return {
        "too long please": Reply(400, VLLM_400),
        "while loading": Reply(503, VLLM_503),
        "slow": Reply(200, {"results": []}, delay_seconds=3),
    }.get(body["query"]) or echo_rerank(body)


@pytest.fixture(scope="module")
def ui_with_test_server():
    with engine_test_server(scripted_engine) as (endpoint, server):
        settings = Settings(endpoint=endpoint, model="qwen3-reranker", timeout_seconds=1,
                            default_instruction="Given a query, find passages that answer it")
        with running_ui(settings) as url:
            yield Client(url, verbose=False), server


def test_the_posted_request_and_the_rendered_answer(ui_with_test_server):
    client, server = ui_with_test_server
    error, usage, table, chart = rerank(client, "read big csv", "pandas chunks\ndask\npolars", "Find code", top_n=2)
    assert server.requests[-1]["path"] == "/v1/rerank"
    assert server.requests[-1]["body"] == {
        "model": "qwen3-reranker", "query": "read big csv", "documents": ["pandas chunks", "dask", "polars"],
        "top_n": 2, "return_documents": True, "instruction": "Find code",
    }
    assert error == ""
    assert table["headers"] == ["Rank", "Score", "Document", "Position"]
    assert table["data"] == [[1, 1.0, "pandas chunks", 1], [2, 0.5, "dask", 2]]
    assert [bar[:2] for bar in chart["data"]] == [["#1", 1.0], ["#2", 0.5]]
    assert usage.startswith("Ranked **3 documents** in **") and "**35** tokens · showing the top 2" in usage


def test_calls_share_a_pooled_connection(ui_with_test_server):
    client, server = ui_with_test_server
    rerank(client, "q", "a")
    rerank(client, "q", "b")
    assert server.requests[-1]["client_port"] == server.requests[-2]["client_port"]


def test_instruction_box_is_prefilled_with_the_deployment_default(ui_with_test_server):
    client, _ = ui_with_test_server
    config = httpx.get(client.src + "config", trust_env=False).json()
    instruction = next(c for c in config["components"] if c["props"].get("elem_id") == "instruction")
    assert instruction["props"]["value"] == "Given a query, find passages that answer it"


@pytest.mark.parametrize("query, fragments", [
    ("too long please", ["The engine rejected the request (HTTP 400): Please reduce the length of the input."]),
    ("while loading", ["The engine is not ready yet (HTTP 503: The engine is loading the model)", "try again"]),
    ("slow", ["did not answer within 1 s", "fewer or shorter documents"]),
])
def test_engine_failures_are_explained(ui_with_test_server, query, fragments):
    client, _ = ui_with_test_server
    error, usage, table, chart = rerank(client, query, "a\nb")
    assert error.startswith("**Could not rerank.**")
    for fragment in fragments:
        assert fragment in error
    assert "Traceback" not in error
    assert usage == "" and table["data"] == [] and chart["data"] == []


# --- concurrency -----------------------------------------------------------------------------------

def test_concurrency_limit_and_bounded_queue():
    # The gated test server holds every call until released, like an engine busy with earlier work.
    with engine_test_server(echo_rerank, gated=True) as (endpoint, server):
        settings = Settings(endpoint=endpoint, timeout_seconds=30, concurrency_limit=2, queue_max_size=1)
        with running_ui(settings) as url:
            client = Client(url, verbose=False)
            running = [client.submit("q", f"doc {i}", "", 0, api_name="/rerank") for i in range(2)]
            wait_for(lambda: server.in_flight == 2, what="two calls at the engine")
            waiting = client.submit("q", "doc 2", "", 0, api_name="/rerank")
            wait_for(lambda: waiting.status().code == Status.IN_QUEUE, what="third call queued")
            with pytest.raises(QueueError, match="Queue is full"):
                client.submit("q", "doc 3", "", 0, api_name="/rerank").result()
            assert server.in_flight == 2 and len(server.requests) == 2  # the third still waits for a slot
            server.gate.set()
            outcomes = [job.result() for job in running + [waiting]]
    assert [error for error, *_ in outcomes] == ["", "", ""]
    assert server.max_in_flight == 2 and len(server.requests) == 3


# --- the entry point --------------------------------------------------------------------------------

def test_entry_point_with_basic_auth_writes_nothing_outside_tmp(tmp_path):
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    scratch = tmp_path / "scratch"
    with engine_test_server(echo_rerank) as (endpoint, server):
        env = {
            "RERANK_ENDPOINT": endpoint,
            "RERANK_MODEL": "qwen3-reranker",
            "RERANK_DEFAULT_INSTRUCTION": "Find code",
            "RERANK_UI_USERNAME": "ann",
            "RERANK_UI_PASSWORD": "s3cret",
            "GRADIO_TEMP_DIR": str(scratch / "gradio"),
            "HOME": str(scratch),
        }
        with running_ui_process(env, cwd=workdir) as url:
            assert httpx.get(url + "config", trust_env=False).status_code == 401
            with pytest.raises(Exception):
                Client(url, verbose=False)
            client = Client(url, auth=("ann", "s3cret"), verbose=False)
            error, _, table, _ = rerank(client, "q", "doc one\ndoc two", "Find code")
            upload = tmp_path / "docs.txt"
            upload.write_text("one\ntwo\n")
            documents, _ = client.predict(handle_file(str(upload)), api_name="/load_upload")
    assert error == "" and [row[2] for row in table["data"]] == ["doc one", "doc two"]
    assert server.requests[0]["body"]["model"] == "qwen3-reranker"
    assert documents == "one\ntwo"
    assert list(workdir.iterdir()) == []  # the container's working directory is read-only
    assert any((scratch / "gradio").rglob("docs.txt"))  # uploads land in GRADIO_TEMP_DIR (an emptyDir)


def test_entry_point_refuses_bad_configuration(monkeypatch, capsys):
    monkeypatch.setenv("RERANK_MAX_DOCUMENTS", "lots")
    with pytest.raises(SystemExit) as excinfo:
        main()
    assert excinfo.value.code == 2
    assert capsys.readouterr().err == "rerank-ui: RERANK_MAX_DOCUMENTS must be a whole number, got 'lots'\n"
