"""The baseline for generator efficiency: a plain Locust ``FastHttpUser`` posting limit orders back to back.

No schedule, no HdrHistograms, no results files: what Locust itself costs per request. Its bodies are
``http_orders.order_body`` (BTCUSD limits around 60,000), the same size and shape as capacity's user sends.
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

    @task
    def place(self) -> None:
        self.client.post("/api/orders", json=order_body(self.rng), name="POST /api/orders")
