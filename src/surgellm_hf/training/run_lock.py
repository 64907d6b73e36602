"""Which process of a distributed launch writes shared files (the global main one)."""

from __future__ import annotations

import os


def is_main_process() -> bool:
    """True in the global rank-0 process of a distributed launch (RANK), and in a plain single process."""
    return int(os.environ.get("RANK", "0")) == 0
