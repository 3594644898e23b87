"""What every section module of the paper layer shares: metrics read back, the setting described, tables, figures
and claim checks written atomically under outputs/<profile>/.

Every section module (apr_lib.paper.<section key>) has one interface:

    KEY                                  its section key (apr_lib.study.sections): notebook, module and outputs share it
    measure(profile, **parameters)       everything the section measures: from the runs' metrics files, or by running
                                         the trained models and analyses (the notebook's parameters are its keywords)
    tables(profile, measured)            {table name: Table} (sections with tables)
    figure(profile, measured)            the section's figure, saved as figures/<KEY>.{png,pdf} (sections with one)
    claims(profile, measured)            the claim checks (`claim` rows) written to claims/<KEY>.csv

Every number in a table comes from a metrics file of this run; the paper's numbers come only from
params/paper_results.yaml (apr_lib.paper.paper_results). Tables carry both, in columns named `ours` and `paper`.
"""
from __future__ import annotations

import dataclasses
import html
import os
from dataclasses import dataclass

import pandas as pd

from apr_lib.errors import UserError
from apr_lib.files import atomic_path, read_json, write_text
from apr_lib.study.config import Profile, RunSpec, find_project_root, load_profile, metrics_file, with_variant

CLAIM_COLUMNS = ["claim", "source", "measure", "ours", "paper", "verdict", "note"]
VERDICTS = ("holds", "fails", "not run")
DATASET_NAMES = {"fmnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet"}
METHOD_LABELS = {"standard": "Standard", "cutout": "Cutout", "mixup": "Mixup", "cutmix": "CutMix",
                 "adv": "Adv Training", "apr_p": "APR-P", "autoaugment": "AutoAugment", "augmix": "AugMix",
                 "apr_s": "APR-S", "apr_sp": "APR-SP"}


def notebook_profile(profile: str, write_reference: bool) -> Profile:
    """A section notebook's profile, from its parameters. Works from the project root, so the paths are the same from
    JupyterLab (cwd notebooks/) and from papermill. Unless `write_reference` (the DAG passes it), the notebook's tables,
    figures and claims go to outputs/<profile>/scratch/, so a notebook run by hand leaves the reference run as it is."""
    os.chdir(find_project_root())
    loaded = dataclasses.replace(load_profile(profile), scratch=not write_reference)
    if loaded.scratch:
        print(f"Writing to {loaded.products}/ (git ignores it); set write_reference = True to replace the reference "
              f"outputs under {loaded.outputs}/.")
    return loaded


def load_metrics(profile: Profile, run: RunSpec, suite: str) -> dict:
    return read_json(metrics_file(profile, run, suite))


def measured(profile: Profile, run: RunSpec, suite: str, *keys: str) -> list:
    """The values of `keys` in a run's metrics file; a file from an older `apr eval` without them is an error."""
    metrics = load_metrics(profile, run, suite)
    missing = [k for k in keys if k not in metrics]
    if missing:
        raise UserError(f"{metrics_file(profile, run, suite)} has no {', '.join(missing)}: an older `apr eval` "
                        "wrote it. "
                        f"Delete it and re-run `snakemake --cores 4 all --config profile={profile.name}` (or "
                        f"`apr eval --profile {profile.name} --run {run.name} --suite {suite}`).")
    return [metrics[k] for k in keys]


def describe_setting(profile: Profile) -> str:
    """What a profile runs, in one sentence, built from the profile itself (printed with every table)."""
    return _profile_sentence(profile, f"{_training(profile['train'])},")


def describe_runs(profile: Profile, runs: list[RunSpec]) -> str:
    """What `runs` trained on, in one sentence, with their variants' `train` overrides (describe_setting gives the
    profile's own `train`, which variants may change)."""
    settings: dict[str, list[str]] = {}
    for run in runs:
        text = _training(with_variant(profile.cfg, run.variant)["train"])
        if run.arch not in settings.setdefault(text, []):
            settings[text].append(run.arch)
    return _profile_sentence(profile, "; ".join(f"{', '.join(archs)} trained {text}" for text, archs in settings.items())
                             + ";")


def _training(train: dict) -> str:
    images = "all" if train.get("train_subset") is None else f"{train['train_subset']:,}"
    return f"{train['epochs']} epochs on {images} training images, batch {train['batch_size']}"


def _profile_sentence(profile: Profile, trained: str) -> str:
    return (f"Profile `{profile.name}`: {DATASET_NAMES.get(profile['dataset'], profile['dataset'])} "
            f"({profile['description']}); {trained} seeds {', '.join(map(str, profile['seeds']))}.")


@dataclass(frozen=True)
class Table:
    """A table of a section: its rows and its caption; `floatfmt` formats its numbers in .md and .tex."""
    frame: pd.DataFrame
    caption: str
    floatfmt: str = ".1f"

    def _repr_html_(self) -> str:  # a notebook shows the caption above the rows
        return f"<p>{html.escape(self.caption)}</p>{self.frame.to_html(index=False)}"


def write_tables(profile: Profile, tables: dict[str, Table]) -> None:
    """tables/<name>.csv (full precision), .md (caption + table) and .tex (booktabs table) of each table."""
    base = profile.products / "tables"
    for name, t in tables.items():
        df, floatfmt = t.frame, t.floatfmt
        write_text(base / f"{name}.csv", df.to_csv(index=False))
        write_text(base / f"{name}.md", f"{t.caption}\n\n{df.to_markdown(index=False, floatfmt=floatfmt)}\n")
        latex = df.to_latex(index=False, float_format=lambda v: format(v, floatfmt), caption=t.caption,
                            label=f"tab:{name}", na_rep="--", escape=True)
        write_text(base / f"{name}.tex", latex)


def save_figure(fig, profile: Profile, name: str) -> None:
    """figures/<name>.png and .pdf."""
    for ext in ("png", "pdf"):
        with atomic_path(profile.products / "figures" / f"{name}.{ext}") as tmp:
            # Fixed metadata keeps the files identical when the figure is (png: no timestamp; pdf: no date).
            metadata = {"Software": None} if ext == "png" else {"CreationDate": None}
            fig.savefig(tmp, dpi=150, bbox_inches="tight", metadata=metadata)


def claim(claim: str, source: str, measure: str, ours: str, paper: str, holds: bool | None, note: str = "") -> dict:
    """One claim check; `holds` None means the run did not measure it."""
    verdict = "not run" if holds is None else ("holds" if holds else "fails")
    return dict(zip(CLAIM_COLUMNS, [claim, source, measure, ours, paper, verdict, note]))


def write_claims(profile: Profile, section_key: str, claims: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(claims, columns=CLAIM_COLUMNS)
    bad = sorted(set(df["verdict"]) - set(VERDICTS))
    if bad:
        raise ValueError(f"verdicts {bad} are not among {VERDICTS}")
    write_text(profile.products / "claims" / f"{section_key}.csv", df.to_csv(index=False))
    return df
