"""A steady client for the node's end-to-end tests, run in a pod (Python's standard library only).

Workers post rerank requests to $URL until /tmp/stop exists, each $PAUSE seconds after its last answer (steady,
not flat out: the engines restarting beside it share the same cores), each with new text (the gateway's score
cache must not answer it) and a check of the answer. Every failure is printed as it happens, the counts
every few seconds, and a final {"final": ...} line when it stops, with each answered request's end time and
latency (so a test can cut the run into phases). A request counts as lost when it fails in any
way: connection refused or reset, a timeout, an HTTP error, or a malformed answer. Nothing is retried.
"""

import json
import os
import threading
import time
import urllib.error
import urllib.request

URL = os.environ["URL"]
MODEL = os.environ["MODEL"]
WORKERS = int(os.environ.get("WORKERS", "2"))
PAUSE = float(os.environ.get("PAUSE", "0.2"))
STOP = "/tmp/stop"

lock = threading.Lock()
state = {"sent": 0, "ok": 0, "failures": [], "latencies": []}


def one(number: int) -> None:
    documents = [f"Document A of request {number} is about rivers.", f"Document B of request {number} is about {number}."]
    body = json.dumps({"model": MODEL, "query": f"Which document mentions {number}?", "documents": documents}).encode()
    request = urllib.request.Request(URL, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        results = json.load(response)["results"]
    if sorted(r["index"] for r in results) != [0, 1]:
        raise ValueError(f"malformed answer: {results}")


def work() -> None:
    while not os.path.exists(STOP):
        with lock:
            state["sent"] += 1
            number = state["sent"]
        started = time.time()
        try:
            one(number)
        except Exception as error:  # every way a request can be lost
            detail = error.read().decode(errors="replace")[:2000] if isinstance(error, urllib.error.HTTPError) else ""
            failure = {"request": number, "at": round(time.time(), 3), "error": f"{type(error).__name__}: {error} {detail}"}
            with lock:
                state["failures"].append(failure)
            print(json.dumps({"failure": failure}), flush=True)
        else:
            with lock:
                state["ok"] += 1
                state["latencies"].append([round(time.time(), 3), round(time.time() - started, 4)])
        time.sleep(PAUSE)


def counts() -> dict:
    with lock:
        return {"ok": state["ok"], "failed": len(state["failures"])}


threads = [threading.Thread(target=work, daemon=True) for _ in range(WORKERS)]
for thread in threads:
    thread.start()
while any(thread.is_alive() for thread in threads):
    print(json.dumps({"progress": counts()}), flush=True)
    time.sleep(3)
print(json.dumps({"final": {**counts(), "failures": state["failures"], "latencies": state["latencies"]}}),
      flush=True)
