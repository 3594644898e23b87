"""The DAG's target lists: what `all` builds for a profile, section by section, and what each section reads.

The Snakefile wires these up; apr_lib.paper.manifest lists the jobs from them.
"""
from __future__ import annotations

from pathlib import Path

from apr_lib.layout import CONFIG, WEIGHTS
from apr_lib.study.config import Profile, RunSpec, metrics_file, per_image_file, published_dir, table_runs
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
            + [out / "figures" / f"{f}.{ext}" for f in s.figures for ext in FIGURE_FORMATS + ("md",)]  # md: caption
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


def seed_runs(profile: Profile, s: Section) -> dict[str, list[RunSpec]]:
    """The runs whose trained models a section loads (method -> one run per seed): its `weights_of` methods on the
    first architecture of its runs table, every seed of that table (its claims take the spread over seeds)."""
    if s.runs_table is None:
        return {}
    runs = table_runs(profile, s.runs_table)
    arch = runs[0].arch if runs else None
    by_method: dict[str, list[RunSpec]] = {}
    for run in runs:
        if run.method in s.weights_of and run.arch == arch and not run.variant:  # the profile's own rows
            by_method.setdefault(run.method, []).append(run)
    return by_method


def model_runs(profile: Profile, s: Section) -> dict[str, RunSpec]:
    """The first seed's run of each method of `seed_runs` (method -> run): the models a figure shows."""
    return {method: runs[0] for method, runs in seed_runs(profile, s).items()}


def section_weights(profile: Profile, s: Section) -> list[Path]:
    """The published weights a section's notebook loads: Snakemake inputs, so `all` trains and publishes them first,
    while a fresh clone's notebooks run by hand on the committed copies (apr_lib.paper.weights)."""
    return [published_dir(profile, run) / WEIGHTS for runs in seed_runs(profile, s).values() for run in runs]


def published_runs(profile: Profile) -> list[RunSpec]:
    """Every run whose weights the DAG publishes under outputs/<profile>/weights/: those the sections load (the
    explorer loads the first seed's of Figure 2's)."""
    runs = {run for s in profile_sections(profile) for runs in seed_runs(profile, s).values() for run in runs}
    return sorted(runs)


def published_weights(profile: Profile) -> list[Path]:
    """The files of every published run: its weights and its config."""
    return [published_dir(profile, run) / name for run in published_runs(profile) for name in (WEIGHTS, CONFIG)]


def claims_table(profile: Profile) -> list[Path]:
    return [profile.outputs / "tables" / f"claims.{ext}" for ext in ("csv", "md")]


def index_page(profile: Profile) -> Path:
    return profile.outputs / "index.md"
