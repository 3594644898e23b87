"""The DAG's target lists: what `all` builds for a profile, section by section, and what each section reads.

The Snakefile wires these up; apr_lib.paper.manifest lists the jobs from them.
"""
from __future__ import annotations

from pathlib import Path

from apr_lib.layout import WEIGHTS
from apr_lib.study.config import Profile, metrics_file, per_image_file, run_dir, table_runs
from apr_lib.study.sections import SECTIONS, Section

TABLE_FORMATS = ("csv", "md", "tex")
FIGURE_FORMATS = ("png", "pdf")


def profile_sections(profile: Profile) -> tuple[Section, ...]:
    """The sections `all` builds for this profile: those its `sections` key lists (paper order), else every one."""
    chosen = profile.cfg.get("sections")
    return SECTIONS if chosen is None else tuple(s for s in SECTIONS if s.key in chosen)


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
    """The metrics files a section's notebook reads, each with its per-image results."""
    if s.runs_table is None:
        return []
    return [path for run in table_runs(profile, s.runs_table) for suite in s.suites
            for path in (metrics_file(profile, run, suite), per_image_file(profile, run, suite))]


def section_weights(profile: Profile, s: Section) -> list[Path]:
    """The trained weights a section's notebook loads: a Snakemake input, so a clone without runs/ trains them."""
    if s.runs_table is None:
        return []
    return [run_dir(profile, run) / WEIGHTS for run in table_runs(profile, s.runs_table) if run.method in s.weights_of]


def claims_table(profile: Profile) -> list[Path]:
    return [profile.outputs / "tables" / f"claims.{ext}" for ext in ("csv", "md")]


def index_page(profile: Profile) -> Path:
    return profile.outputs / "index.md"
