"""The counters the autoscaler sizes by, on the real CPU engine serving rerank requests.

The policy (operator/rerank_operator/autoscaling/policy.py) assumes, per engine pod:
* one query-document pair of a rerank call is one engine request, counted once in
  ``vllm:request_success_total`` when it is done;
* ``vllm:prompt_tokens_total`` grows by the tokens those pairs carried (the work), so longer
  documents weigh more;
* what arrived = what was done + the change of waiting + running (nothing is lost between the
  counters and the gauges), which is how it measures demand between two scrapes;
* requests wait (``vllm:num_requests_waiting`` > 0) only while the engine runs a full batch, which
  is when it learns the capacity.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import requests

from rerank_operator.autoscaling.metrics import parse_engine_sample

from tests.fixtures.engine import metrics_under_load


def sample(engine):
    return parse_engine_sample(requests.get(engine.url("/metrics"), timeout=10).text)


def rerank(engine, documents: list[str]) -> dict:
    body = {"model": engine.model, "query": "What is the capital of France?", "documents": documents}
    request = urllib.request.Request(engine.url("/v1/rerank"), data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def test_one_pair_is_one_engine_request_and_prompt_tokens_carry_its_length(rerank_engine):
    before = sample(rerank_engine)
    short = rerank(rerank_engine, ["Paris is the capital of France."] * 4)
    middle = sample(rerank_engine)
    long_doc = " ".join(["Paris is the capital and the largest city of France, on the Seine."] * 12)
    long = rerank(rerank_engine, [long_doc] * 4)
    after = sample(rerank_engine)

    assert middle.requests_done - before.requests_done == 4
    assert after.requests_done - middle.requests_done == 4
    short_tokens = middle.prompt_tokens - before.prompt_tokens
    long_tokens = after.prompt_tokens - middle.prompt_tokens
    # The counter moves by exactly the prompt tokens the API reports for the call...
    assert short_tokens == short["usage"]["prompt_tokens"]
    assert long_tokens == long["usage"]["prompt_tokens"]
    # ...so a pair of a long document weighs several pairs of a short one.
    assert long_tokens > 3 * short_tokens
    assert after.total == 0


def test_arrivals_equal_done_plus_in_flight_and_waiting_means_a_full_batch(rerank_engine):
    # Start many pairs at once, read the metrics while they are served and when they are done:
    # done + in flight never exceeds what was sent, and adds up to it once all have arrived.
    before = sample(rerank_engine)
    clients, documents = 8, 32
    threads = [threading.Thread(target=rerank, args=(rerank_engine, [f"Document {i}-{j} about Paris." for j in range(documents)]))
               for i in range(clients)]
    for t in threads:
        t.start()
    busy = []
    while any(t.is_alive() for t in threads):
        busy.append(sample(rerank_engine))
        time.sleep(0.05)
    for t in threads:
        t.join()
    after = sample(rerank_engine)
    sent = clients * documents
    for s in busy:
        assert (s.requests_done - before.requests_done) + s.total <= sent, s
    assert any(s.total > 0 for s in busy)
    assert after.requests_done - before.requests_done == sent and after.total == 0
    # A request waits only behind a full batch: while any waits, the running batch is the engine's
    # whole concurrency (never a partial one).
    text = metrics_under_load(rerank_engine, clients=8, documents=32, timeout=60)
    loaded = parse_engine_sample(text)
    assert loaded.waiting > 0 and loaded.running > 0
