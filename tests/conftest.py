"""Tests are split by package (``exchange/``, ``toolkit/`` with a folder per stage of capacity, and
``benchmarks/``); ``support.py`` beside this file serves them all, so this directory goes on sys.path for
them (pytest puts only each test file's own directory there)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
