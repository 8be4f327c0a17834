"""The bare Locust user of benchmarks/stream_bench.py: reads the same SSE streams as ChatUser,
with nothing aftershock adds (no per-event clock, no windows, no plugin).

It does what any client that counts tokens must: read each line as it lands (the same
geventhttpclient call ChatUser uses), parse each `data:` event's JSON, count content
deltas. At test stop it writes the tokens it read to $AFTERSHOCK_BENCH_TOKENS/<pid>.json.
"""

import json
import os

from locust import constant, events, task
from locust.contrib.fasthttp import FastHttpUser

BODY = json.dumps({"messages": [{"role": "user", "content": "go"}], "stream": True}).encode()
HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream", "Accept-Encoding": "identity"}
TOKENS = {"n": 0}


class BareStreamUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def generate(self) -> None:
        with self.client.request("POST", "/v1/chat/completions", data=BODY, headers=HEADERS, stream=True,
                                 catch_response=True) as resp:
            body = resp._response
            while line := body.readline(b"\n"):
                if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                    choices = json.loads(line[6:])["choices"]
                    if choices and choices[0]["delta"].get("content"):
                        TOKENS["n"] += 1


@events.test_stop.add_listener
def _stop(**_: object) -> None:
    out = os.environ.get("AFTERSHOCK_BENCH_TOKENS")
    if out:
        with open(os.path.join(out, f"{os.getpid()}.json"), "w") as f:
            json.dump({"tokens": TOKENS["n"]}, f)
