"""Progress bars: tqdm's for a person watching (a widget in Jupyter, a bar in a terminal), plain lines for a run
whose output is kept.

The DAG runs its notebooks with APR_PROGRESS=lines (Snakefile): a widget saved in an executed notebook shows only
its first state ("0%| 0/394") in a viewer without widget support, and a text bar's redraws would all be kept. With
`lines`, a loop shorter than LINE_SECONDS prints nothing; a longer one prints a line every LINE_SECONDS and one when
it ends.
"""
from __future__ import annotations

import os
import sys

from tqdm import auto, std

VARIABLE = "APR_PROGRESS"
LINE_SECONDS = 30


class _Lines:
    """A stream that gives each redraw of a bar a line of its own instead of a carriage return."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def tqdm(iterable=None, **kwargs):
    """tqdm.auto.tqdm, or plain lines where APR_PROGRESS=lines."""
    if os.environ.get(VARIABLE) != "lines":
        return auto.tqdm(iterable, **kwargs)
    return std.tqdm(iterable, **{**kwargs, "disable": False, "ascii": True, "file": _Lines(sys.stderr),
                                 "delay": LINE_SECONDS, "mininterval": LINE_SECONDS})
