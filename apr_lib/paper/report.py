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

import html
from dataclasses import dataclass

import pandas as pd

from apr_lib.errors import UserError
from apr_lib.files import atomic_path, read_json, write_text
from apr_lib.study.config import Profile, RunSpec, metrics_file, with_variant
from apr_lib.uncertainty import Estimate, Interval, difference

CLAIM_COLUMNS = ["claim", "kind", "source", "measure", "ours", "paper", "difference", "low", "high", "seeds", "verdict",
                 "counted", "note"]
VERDICTS = ("holds", "fails", "inconclusive", "not comparable", "not run")
# What a claim is, kept apart: only the paper's own claims are counted in the headline.
KINDS = {"paper": "the paper's claims", "beyond paper": "checks beyond the paper",
         "released code": "statements of the released code or its authors",
         "identity": "identities of the method's math"}
DATASET_NAMES = {"fmnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet"}
METHOD_LABELS = {"standard": "Standard", "cutout": "Cutout", "mixup": "Mixup", "cutmix": "CutMix",
                 "adv": "Adv Training", "apr_p": "APR-P", "autoaugment": "AutoAugment", "augmix": "AugMix",
                 "apr_s": "APR-S", "apr_sp": "APR-SP"}


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
    return _profile_sentence(profile, f"{_training(profile['train'])},", profile["seeds"])


def describe_runs(profile: Profile, runs: list[RunSpec]) -> str:
    """What `runs` trained on, in one sentence, with their variants' `train` overrides (describe_setting gives the
    profile's own `train`, which variants may change) and their seeds."""
    settings: dict[str, list[str]] = {}
    for run in runs:
        text = _training(with_variant(profile.cfg, run.variant)["train"])
        if run.arch not in settings.setdefault(text, []):
            settings[text].append(run.arch)
    return _profile_sentence(profile, "; ".join(f"{', '.join(archs)} trained {text}" for text, archs in settings.items())
                             + ";", sorted({run.seed for run in runs}))


def _training(train: dict) -> str:
    images = "all" if train.get("train_subset") is None else f"{train['train_subset']:,}"
    return f"{train['epochs']} epochs on {images} training images, batch {train['batch_size']}"


def _profile_sentence(profile: Profile, trained: str, seeds: list[int]) -> str:
    return (f"Profile `{profile.name}`: {DATASET_NAMES.get(profile['dataset'], profile['dataset'])} "
            f"({profile['description']}); {trained} seed{'s' if len(seeds) > 1 else ''} "
            f"{', '.join(map(str, seeds))}.")


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
    base = profile.outputs / "tables"
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
        with atomic_path(profile.outputs / "figures" / f"{name}.{ext}") as tmp:
            # Fixed metadata keeps the files identical when the figure is (png: no timestamp; pdf: no date).
            metadata = {"Software": None} if ext == "png" else {"CreationDate": None}
            fig.savefig(tmp, dpi=150, bbox_inches="tight", metadata=metadata)


# ---- claims: conditions, intervals and verdicts ----

@dataclass(frozen=True)
class Condition:
    """One measured condition of a claim: a difference (or a statistic against 0) with its 95% interval, and the side
    the claim puts it on (`side` +1: above 0, -1: below 0, 0: no difference). A `not_worse` condition ("while
    maintaining test accuracy") fails only where the interval lies wholly on the other side and never decides a
    `holds` alone. A claim of no difference (side 0) fails where the interval excludes 0 and is otherwise
    inconclusive: without a margin, which the paper does not give, no interval can show that a difference is 0.

    The interval is rounded outwards to `digits` decimals before the verdict, so the verdict reads off the printed
    numbers."""
    measure: str
    ours: str
    paper: str
    interval: Interval
    side: int
    not_worse: bool = False
    digits: int = 2

    @property
    def shown(self) -> Interval:
        return self.interval.rounded(self.digits)

    @property
    def margin(self) -> float:
        """How far the interval lies on the claim's side of 0 (positive: wholly on it, negative: wholly off it)."""
        shown = self.shown
        return shown.low if self.side > 0 else -shown.high if self.side < 0 else -self.against

    @property
    def against(self) -> float:
        """How far the interval lies on the other side of 0 (positive: wholly on the other side)."""
        shown = self.shown
        return -shown.high if self.side > 0 else shown.low if self.side < 0 else max(shown.low, -shown.high)

    @property
    def verdict(self) -> str:
        if self.against > 0:
            raw = "fails"
        elif self.margin > 0 and not self.not_worse and self.side != 0:
            raw = "holds"
        else:
            return "holds" if self.not_worse else "inconclusive"  # a not_worse condition not refuted does not block
        return "inconclusive" if self.interval.seed_variation == "unknown" else raw

    def describe(self) -> str:
        shown = self.shown
        expected = ("not below 0" if self.side > 0 else "not above 0") if self.not_worse else (
            "> 0" if self.side > 0 else "< 0" if self.side < 0 else "= 0")
        return (f"{self.measure} (claim: {expected}): {shown.estimate:+.{self.digits}f} "
                f"[{shown.low:+.{self.digits}f}, {shown.high:+.{self.digits}f}], {self.verdict}")


def compare(measure: str, labels: tuple[str, str], first: Estimate, second: Estimate, side: int,
            paper: tuple[float | None, float | None] | str = "", digits: int = 1, not_worse: bool = False,
            trained: bool = True) -> Condition:
    """The condition "`first` - `second`" of two methods' statistics (labels: their names), on the claim's `side`;
    `paper`: the paper's two numbers (or a phrase where it prints none)."""
    if isinstance(paper, tuple):
        paper = " vs ".join("" if v is None else f"{v:g}" for v in paper) if any(v is not None for v in paper) else ""
    return Condition(f"{measure}, {labels[0]} - {labels[1]}", f"{first.value:.{digits}f} vs {second.value:.{digits}f}",
                     paper, difference(first, second, trained), side, not_worse, digits)


VERDICT_RULE = (
    "Verdicts come from 95% intervals that hold both the seeds' and the test images' variation (apr_lib.uncertainty): "
    "a condition holds if its interval excludes 0 on the claim's side, fails if it excludes 0 on the other side, and "
    "is inconclusive if it contains 0 (or if a side has one seed, whose training variation is unknown). A claim with "
    "several conditions holds if every condition holds (or the number it names, e.g. 13 of 15), fails if any "
    "condition fails decisively (so that the number cannot be reached), and is inconclusive otherwise; a \"while "
    "maintaining\" condition only fails the claim (where its interval lies wholly on the worse side). The numbers "
    "shown are those of the condition that decides the verdict; the note lists every condition. Not comparable: our "
    "set-up cannot test the claim (the note says why); not run: the profile has no runs for it.")


def claim(text: str, source: str, kind: str, conditions: list[Condition], note: str = "", need: int | None = None,
          counted_in: str = "") -> dict:
    """One claim, its verdict combined from its conditions by VERDICT_RULE (`need`: how many of the directional
    conditions must hold, default all). `counted_in` names the claim that counts the same evidence, where this one
    re-measures it on the same runs (it is then left out of the counts)."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {list(KINDS)}")
    directional = [c for c in conditions if not c.not_worse]
    guards = [c for c in conditions if c.not_worse]
    if not directional:
        raise ValueError(f"claim {text!r}: needs at least one condition that is not a 'not_worse' one")
    need = len(directional) if need is None else need
    holding = sorted((c for c in directional if c.verdict == "holds"), key=lambda c: -c.margin)
    failing = sorted((c for c in directional if c.verdict == "fails"), key=lambda c: -c.against)
    broken = [c for c in guards if c.verdict == "fails"]
    if broken or len(failing) > len(directional) - need:
        verdict, decides = "fails", broken[0] if broken else failing[len(directional) - need]
    elif len(holding) >= need:
        verdict, decides = "holds", holding[need - 1]
    else:
        verdict, decides = "inconclusive", next(c for c in directional if c.verdict == "inconclusive")
    notes = [note] if note else []
    if decides.interval.seed_variation == "unknown":
        notes.append("a side has one seed: its training variation is unknown, so no verdict beyond inconclusive")
    if len(conditions) > 1:
        rule = f"{need} of {len(directional)} must hold" if need < len(directional) else "all must hold"
        notes.append(f"conditions ({rule}): " + "; ".join(c.describe() for c in conditions))
    shown = decides.shown
    return dict(zip(CLAIM_COLUMNS, [
        text, kind, source, decides.measure, decides.ours, decides.paper, shown.estimate, shown.low, shown.high,
        " vs ".join(map(str, shown.seeds)) if shown.seeds else "", verdict,
        f"no: counted in {counted_in}" if counted_in else "yes", "; ".join(notes)]))


def unmeasured(text: str, source: str, kind: str, measure: str, paper: str, verdict: str, note: str) -> dict:
    """A claim this run does not measure: `verdict` "not run" (no runs for it) or "not comparable" (our set-up cannot
    test it; `note` says why)."""
    if verdict not in ("not run", "not comparable"):
        raise ValueError(f"verdict {verdict!r}: a claim without a measurement is 'not run' or 'not comparable'")
    return dict(zip(CLAIM_COLUMNS, [text, kind, source, measure, "", paper, None, None, None, "", verdict, "yes",
                                    note]))


def write_claims(profile: Profile, section_key: str, claims: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(claims, columns=CLAIM_COLUMNS)
    bad = sorted(set(df["verdict"]) - set(VERDICTS))
    if bad:
        raise ValueError(f"verdicts {bad} are not among {VERDICTS}")
    write_text(profile.outputs / "claims" / f"{section_key}.csv", df.to_csv(index=False))
    return df
