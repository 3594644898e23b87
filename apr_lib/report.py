"""Tables, figures, claim checks and the index page, all written atomically under outputs/<profile>/.

Every number in a table comes from a metrics file of this run; the paper's numbers come only from
params/paper_results.yaml (apr_lib.paper). Tables carry both, in columns named `ours` and `paper`.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from apr_lib.config import Profile, RunSpec, metrics_file, with_variant
from apr_lib.files import atomic_path, read_json, write_text
from apr_lib.sections import claims_table, index_page, profile_sections

CLAIM_COLUMNS = ["claim", "source", "measure", "ours", "paper", "verdict", "note"]
VERDICTS = ("holds", "fails", "not run")
DATASET_NAMES = {"fmnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet"}


def load_metrics(profile: Profile, run: RunSpec, suite: str) -> dict:
    return read_json(metrics_file(profile, run, suite))


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


def write_table(df: pd.DataFrame, profile: Profile, name: str, caption: str, floatfmt: str = ".1f") -> None:
    """tables/<name>.csv (full precision), .md (caption + table) and .tex (booktabs table)."""
    base = profile.outputs / "tables"
    write_text(base / f"{name}.csv", df.to_csv(index=False))
    write_text(base / f"{name}.md", f"{caption}\n\n{df.to_markdown(index=False, floatfmt=floatfmt)}\n")
    latex = df.to_latex(index=False, float_format=lambda v: format(v, floatfmt), caption=caption,
                        label=f"tab:{name}", na_rep="--", escape=True)
    write_text(base / f"{name}.tex", latex)


def save_figure(fig, profile: Profile, name: str) -> None:
    """figures/<name>.png and .pdf."""
    for ext in ("png", "pdf"):
        with atomic_path(profile.outputs / "figures" / f"{name}.{ext}") as tmp:
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
    write_text(profile.outputs / "claims" / f"{section_key}.csv", df.to_csv(index=False))
    return df


def merge_claims(profile: Profile) -> pd.DataFrame:
    """tables/claims.{csv,md}: every section's claims, in the paper's order."""
    frames = []
    for s in profile_sections(profile):
        path = profile.outputs / "claims" / f"{s.key}.csv"
        frames.append(pd.read_csv(path, keep_default_na=False).assign(section=s.key))
    df = pd.concat(frames, ignore_index=True)[["section"] + CLAIM_COLUMNS]
    csv_path, md_path = claims_table(profile)
    write_text(csv_path, df.to_csv(index=False))
    counts = df["verdict"].value_counts()
    summary = ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)
    write_text(md_path, f"Claims of the paper checked by this run ({summary}). {describe_setting(profile)}\n\n"
               f"{df.to_markdown(index=False)}\n")
    return df


def write_index(profile: Profile) -> str:
    """index.md: every table and figure in the paper's order, ours beside the paper's, with the claims."""
    out = profile.outputs
    lines = [f"# APR companion: results of profile `{profile.name}`", "",
             describe_setting(profile), "",
             "Every number below comes from a run of this profile; the paper's numbers come from "
             "`params/paper_results.yaml`. Regenerate with `snakemake --cores 4 all"
             + ("" if profile.name == "default" else f" --config profile={profile.name}") + "`.", ""]
    for s in profile_sections(profile):
        lines += [f"## {s.paper}: {s.title}", "", s.summary, ""]
        for table in s.tables:
            lines += [(out / "tables" / f"{table}.md").read_text(encoding="utf-8").strip(), "",
                      f"Files: [csv](tables/{table}.csv), [md](tables/{table}.md), [tex](tables/{table}.tex)", ""]
        for figure in s.figures:
            lines += [f"![{s.paper}](figures/{figure}.png)", "",
                      f"Files: [png](figures/{figure}.png), [pdf](figures/{figure}.pdf)", ""]
        claims = pd.read_csv(out / "claims" / f"{s.key}.csv", keep_default_na=False)
        if len(claims):
            lines += ["Claims checked:", "",
                      claims[["claim", "measure", "ours", "paper", "verdict"]].to_markdown(index=False), ""]
        lines += [f"Notebook: [notebooks/{s.notebook}.ipynb](notebooks/{s.notebook}.ipynb); "
                  f"claim checks: [claims/{s.key}.csv](claims/{s.key}.csv)", ""]
    claims_csv, claims_md = (os.path.relpath(path, out) for path in claims_table(profile))
    lines += ["## All claims", "", f"See [{claims_md}]({claims_md}) ([csv]({claims_csv})).", "",
              "## How this run was made", "",
              "The commit, profile, package versions, device, cores and wall time per job, per rule and in total: "
              "[manifest.json](manifest.json), written by the DAG's last rule, after this page.", ""]
    text = "\n".join(lines)
    write_text(index_page(profile), text)
    return text
