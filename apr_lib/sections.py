"""The paper's tables and figures as sections of this project, in the paper's order.

The one list the Snakefile (what `all` builds), the index page and the tests read. Each section is a
notebook under notebooks/ that writes, under outputs/<profile>/:
    tables/<table>.{csv,md,tex}   figures/<figure>.{png,pdf}   claims/<key>.csv   notebooks/<notebook>.ipynb
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from apr_lib.config import Profile, metrics_file, table_runs

TABLE_FORMATS = ("csv", "md", "tex")
FIGURE_FORMATS = ("png", "pdf")


@dataclass(frozen=True)
class Section:
    key: str                      # also the name of its claims file
    notebook: str                 # notebooks/<notebook>.ipynb
    paper: str                    # where it stands in the paper
    title: str
    summary: str                  # one line for the index: what it shows
    tables: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    runs_table: str | None = None  # profile key under `tables:` listing the runs it reads
    suites: tuple[str, ...] = ()   # metrics suites it reads for each of those runs


SECTIONS: tuple[Section, ...] = (
    Section("fig7_apr_examples", "04_fig7_apr_examples", "Figure 7 (section 4)",
            "The two ways of Amplitude-Phase Recombination",
            "APR-P and APR-S applied to test images, and how far each moves an image from the original.",
            figures=("fig7_apr_examples",)),
    Section("table1_corruption", "05_table1_corruption", "Table 1 (section 5.1)",
            "Common corruptions",
            "Clean and mean corruption error of each training method on the profile's -C test set.",
            tables=("table1_corruption",), runs_table="table1_corruption", suites=("clean", "corruption")),
)


def section(key: str) -> Section:
    for s in SECTIONS:
        if s.key == key:
            return s
    raise KeyError(f"no section {key!r}; sections: {', '.join(s.key for s in SECTIONS)}")


def section_products(profile: Profile, s: Section) -> list[Path]:
    """The tables, figures and claims file a section's notebook writes."""
    out = profile.outputs
    return ([out / "tables" / f"{t}.{ext}" for t in s.tables for ext in TABLE_FORMATS]
            + [out / "figures" / f"{f}.{ext}" for f in s.figures for ext in FIGURE_FORMATS]
            + [out / "claims" / f"{s.key}.csv"])


def executed_notebook(profile: Profile, s: Section) -> Path:
    return profile.outputs / "notebooks" / f"{s.notebook}.ipynb"


def section_outputs(profile: Profile, s: Section) -> list[Path]:
    return section_products(profile, s) + [executed_notebook(profile, s)]


def section_metrics(profile: Profile, s: Section) -> list[Path]:
    """The metrics files a section's notebook reads."""
    if s.runs_table is None:
        return []
    return [metrics_file(profile, run, suite) for run in table_runs(profile, s.runs_table) for suite in s.suites]


def claims_table(profile: Profile) -> list[Path]:
    return [profile.outputs / "tables" / f"claims.{ext}" for ext in ("csv", "md")]


def index_page(profile: Profile) -> Path:
    return profile.outputs / "index.md"
