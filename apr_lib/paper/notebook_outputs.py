"""Source notebooks keep no outputs, except the cells nbval checks (README, "Tests and CI").

A cell whose source contains `# NBVAL_CHECK_OUTPUT` keeps its committed, deterministic output, which
`pytest --nbval-lax` compares with a fresh run; every other cell is stored empty (the executed copies live
under outputs/<profile>/notebooks/). Refresh the checked outputs with
    jupyter nbconvert --to notebook --execute --inplace notebooks/<name>.ipynb && apr strip-notebooks notebooks/*.ipynb
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from apr_lib.files import write_text

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and CHECK_MARK in cell.source


def strip_unchecked_outputs(path: str | Path) -> bool:
    """Remove outputs and execution counts of every unchecked cell of `path`; True if the file changed."""
    path = Path(path)
    original = path.read_text(encoding="utf-8")
    nb = nbformat.reads(original, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and not is_checked(cell):
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)  # timing metadata changes on every run
    nb.metadata.pop("papermill", None)
    stripped = nbformat.writes(nb) + "\n"
    if stripped != original:
        write_text(path, stripped)
    return stripped != original
