"""The baseline for generator efficiency: a plain Locust ``FastHttpUser`` posting limit orders back to back.

No schedule, no HdrHistograms, no results files: what Locust itself costs per request. Its bodies are
``http_orders.order_body`` (BTCUSD limits around 60,000) with the two fields capacity's user adds to every
limit order, ``time_in_force`` and a ``client_order_id`` of the same form, so both send the same bytes.
Run by ``generator_efficiency.py``.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from locust import FastHttpUser, constant, task

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_orders import order_body


class PlainTrader(FastHttpUser):
    wait_time = constant(0)
    concurrency = 2

    def on_start(self) -> None:
        self.rng = random.Random(id(self))
        self.prefix = f"plain-{id(self):x}"
        self.sequence = 0

    @task
    def place(self) -> None:
        self.sequence += 1
        body = order_body(self.rng) | {
            "time_in_force": "gtc",
            "client_order_id": f"{self.prefix}-{self.sequence}",
        }
        self.client.post("/api/orders", json=body, name="POST /api/orders")
