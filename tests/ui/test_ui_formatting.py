"""Results, errors and engine status → what the page shows."""

import pytest

from rerank_ui.client import (
    EndpointTimeout,
    EndpointUnreachable,
    EngineError,
    HealthProbe,
    InvalidResponse,
    RankedDocument,
    RerankResponse,
)
from rerank_ui.formatting import (
    CHART_COLUMNS,
    TABLE_COLUMNS,
    empty_chart,
    empty_table,
    error_block,
    error_message,
    format_latency,
    results_table,
    score_chart,
    status_banner,
    usage_text,
)
from rerank_ui.status import Condition, DeploymentStatus

RESULTS = [
    RankedDocument(index=2, score=0.91234, text="polars scan_csv reads lazily"),
    RankedDocument(index=0, score=0.5, text="pandas read_csv with chunksize"),
    RankedDocument(index=1, score=0.01, text="CSV\nwas invented " + "long " * 20),
]


def test_results_table_ranks_from_one_and_shows_original_positions():
    table = results_table(RESULTS)
    assert list(table.columns) == TABLE_COLUMNS
    assert table["Rank"].tolist() == [1, 2, 3]
    assert table["Score"].tolist() == [0.9123, 0.5, 0.01]
    assert table["Position"].tolist() == [3, 1, 2]
    assert table["Document"].iloc[0] == "polars scan_csv reads lazily"


def test_score_chart_has_one_bar_per_rank_with_a_short_document_tooltip():
    chart = score_chart(RESULTS + [RankedDocument(index=3, score=0.0, text="polars scan_csv reads lazily")])
    assert list(chart.columns) == CHART_COLUMNS
    assert chart["Rank"].tolist() == ["#1", "#2", "#3", "#4"]  # unique even when texts repeat
    assert chart["Score"].tolist() == [0.91234, 0.5, 0.01, 0.0]
    tooltip = chart["Document"].tolist()
    assert tooltip[0] == "polars scan_csv reads lazily"
    assert tooltip[2].startswith("CSV was invented") and tooltip[2].endswith("…") and "\n" not in tooltip[2]
    assert len(tooltip[2]) == 60


def test_empty_outputs_keep_their_columns():
    assert list(empty_table().columns) == TABLE_COLUMNS and empty_table().empty
    assert list(empty_chart().columns) == CHART_COLUMNS and empty_chart().empty


@pytest.mark.parametrize("seconds, text", [(0.0123, "12 ms"), (0.9994, "999 ms"), (1.5, "1.50 s"), (12.345, "12.35 s")])
def test_format_latency(seconds, text):
    assert format_latency(seconds) == text


def test_usage_text_reports_latency_tokens_and_truncation():
    response = RerankResponse(results=RESULTS[:2], total_tokens=12345, latency_seconds=0.084, document_count=6)
    assert usage_text(response) == "Ranked **6 documents** in **84 ms** · **12,345** tokens · showing the top 2"


def test_usage_text_without_token_count():
    response = RerankResponse(results=RESULTS[:1], total_tokens=None, latency_seconds=2.0, document_count=1)
    assert usage_text(response) == "Ranked **1 document** in **2.00 s**"


@pytest.mark.parametrize("error, fragments", [
    (EndpointUnreachable("http://r:8000", "connection refused"),
     ["http://r:8000 is unreachable (connection refused)", "RERANK_ENDPOINT"]),
    (EndpointTimeout("http://r:8000", 30), ["did not answer within 30 s", "fewer or shorter documents"]),
    (EngineError(400, "top_n must be positive"), ["rejected the request (HTTP 400): top_n must be positive"]),
    (EngineError(404, "The model `x` does not exist."), ["HTTP 404", "The model `x` does not exist."]),
    (EngineError(503, "loading"), ["not ready yet", "still be loading"]),
    (EngineError(429, "too many"), ["busy"]),
    (EngineError(413, "body too big"), ["too large", "fewer or shorter"]),
    (EngineError(500, "CUDA out of memory. Tried to allocate 2.00 GiB"),
     ["engine failed (HTTP 500", "ran out of memory", "maxNumBatchedTokens"]),
    (EngineError(500, "EngineCore died"), ["engine failed (HTTP 500: EngineCore died)", "engine's logs"]),
    (InvalidResponse("no results list"), ["Unexpected answer", "no results list"]),
])
def test_error_messages_say_what_to_do(error, fragments):
    message = error_message(error)
    for fragment in fragments:
        assert fragment in message
    assert "Traceback" not in message


def test_room_is_not_mistaken_for_out_of_memory():
    assert "out of memory" not in error_message(EngineError(500, "no room for the request header"))


def test_error_block_escapes_engine_supplied_markup():
    block = error_block("bad <script>alert(1)</script> input")
    assert "<script>" not in block
    assert "&lt;script&gt;" in block
    assert block.startswith("**Could not rerank.**")


HEALTHY = HealthProbe(True, "engine healthy")
DOWN = HealthProbe(False, "http://r:8000 is unreachable (connection refused)")


def status(ready, desired, *conditions):
    return DeploymentStatus(ready, desired, replicas=desired, conditions=tuple(conditions))


LOADING = Condition("Ready", "False", "ModelLoading", "model loading")
CRASHING = Condition("Degraded", "True", "CrashLoopBackOff", "engine pods crash: CUDA out of memory")


@pytest.mark.parametrize("deployment, health, expected", [
    (status(1, 3, LOADING), HEALTHY, "⏳ **Model loading** — 1 of 3 replicas ready"),
    (status(1, 3), HEALTHY, "⏳ **Scaling** — 1 of 3 replicas ready"),
    (status(0, 3, Condition("Ready", "False", "ModelDownloading")), DOWN,
     "⏳ **Model downloading** — 0 of 3 replicas ready. Requests will fail until a replica is ready."),
    (status(0, 1), DOWN, "⏳ **Engine starting** — 0 of 1 replica ready. Requests will fail until a replica is ready."),
    (status(0, 2, LOADING, CRASHING), DOWN,
     "⚠️ **Engine pods crash: CUDA out of memory** — 0 of 2 replicas ready. "
     "Requests will fail until a replica is ready."),
    (status(2, 2, CRASHING), HEALTHY, "⚠️ **Engine pods crash: CUDA out of memory** — 2 of 2 replicas ready"),
    (status(2, 2, Condition("Ready", "True", "Serving", "all replicas ready")), HEALTHY,
     "✅ **Ready** — 2 of 2 replicas ready"),
    (status(1, 1), DOWN,
     "⚠️ **Engine not answering** — http://r:8000 is unreachable (connection refused) (1 of 1 replica ready)"),
    (status(0, 0), DOWN,
     "⏸️ **Scaled to zero** — no engine replica is running; requests will fail until it is scaled up."),
    # Every desired replica ready and answering: the counts win over a lagging condition.
    (status(1, 1, Condition("Ready", "False", "X", "<b>stale</b>")), HEALTHY, "✅ **Ready** — 1 of 1 replica ready"),
    (status(0, 1, Condition("Ready", "False", "X", "<img src=x onerror=alert(1)>")), HEALTHY,
     "⏳ **&lt;img src=x onerror=alert(1)&gt;** — 0 of 1 replica ready. Requests will fail until a replica is ready."),
    (None, HEALTHY, "✅ **Ready** — engine healthy"),
    (None, DOWN, "⚠️ **Engine not answering** — http://r:8000 is unreachable (connection refused)"),
])
def test_status_banner(deployment, health, expected):
    assert status_banner(deployment, health) == expected
