"""What every section module of the paper layer shares: metrics read back, the setting described, tables, figures
and claim checks written atomically under outputs/<profile>/.

Every section module (apr_lib.paper.<section key>) has one interface:

    KEY                                  its section key (apr_lib.study.sections): notebook, module and outputs share it
    measure(profile, **parameters)       everything the section measures: from the runs' metrics files, or by running
                                         the trained models and analyses (the notebook's parameters are its keywords)
    tables(profile, measured)            {table name: Table} (sections with tables)
    figure(profile, measured)            the section's figure, saved as figures/<KEY>.{png,pdf} (sections with one)
    figure_caption(profile, measured)    its caption, saved as figures/<KEY>.md and shown beside it in the index: what
                                         it shows, on which models and budget, and what it does not show
    claims(profile, measured)            the claim checks (`claim` rows) written to claims/<KEY>.csv

Every number in a table comes from a metrics file of this run; the paper's numbers come only from
params/paper_results.yaml (apr_lib.paper.paper_results). Tables carry both, in columns named `ours` and `paper`.
"""
from __future__ import annotations

import dataclasses
import html
import math
import os
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import matplotlib
import pandas as pd
from matplotlib.text import Text

from apr_lib.errors import UserError
from apr_lib.files import atomic_path, read_json, write_text
from apr_lib.study.config import Profile, RunSpec, find_project_root, load_profile, metrics_file, with_variant
from apr_lib.uncertainty import Estimate, Interval, difference

CLAIM_COLUMNS = ["claim", "kind", "source", "measure", "ours", "paper", "difference", "low", "high", "seeds", "verdict",
                 "counted", "note"]
VERDICTS = ("holds", "fails", "inconclusive", "not comparable", "not run")
# What a claim is, kept apart: only the paper's own claims are counted in the headline.
KINDS = {"paper": "the paper's claims", "beyond paper": "checks beyond the paper",
         "released code": "statements of the released code or its authors",
         "identity": "identities of the method's math"}
DATASET_NAMES = {"fmnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet"}
SCORE_NAMES = {"msp": "maximum softmax probability", "max_logit": "maximum logit"}  # OOD scores (Table 2)
MIN_FONT_POINTS = 9  # readable on a slide at the figure's saved size
# Every figure of the paper layer: fonts readable on a slide, perceptual colour maps (viridis by default; magma,
# cividis and a diverging map where a figure says so). Set on import: every section module imports this one.
STYLE = {"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9,
         "legend.fontsize": 9, "figure.titlesize": 12, "image.cmap": "viridis", "savefig.dpi": 150}
matplotlib.rcParams.update(STYLE)
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
    return _profile_sentence(profile, f"{_training(profile['train'])},", profile["seeds"])


def describe_runs(profile: Profile, runs: list[RunSpec], label=None) -> str:
    """What `runs` trained on, in one sentence: each training setting (the profile's `train` with each run's variant
    merged in) and, where the runs differ, which runs have which (named by `label(run)`, default the method and
    variant), and their seeds, so that a caption states its own section's budget."""
    settings: dict[str, list[str]] = {}
    for run in runs:
        text = _training(with_variant(profile.cfg, run.variant)["train"])
        name = (label(run) if label else
                METHOD_LABELS.get(run.method, run.method) + (f" ({run.variant})" if run.variant else ""))
        if name not in settings.setdefault(text, []):
            settings[text].append(name)
    archs = ", ".join(dict.fromkeys(run.arch for run in runs))
    seeds = sorted({run.seed for run in runs})  # a table may set its own seeds
    if len(settings) == 1:
        return _profile_sentence(profile, f"{archs} trained {next(iter(settings))};", seeds)
    return _profile_sentence(profile, f"{archs} trained " + "; ".join(f"{_listed(names)}: {text}"
                                                                      for text, names in settings.items()) + ";", seeds)


def describe_untrained(profile: Profile, what: str) -> str:
    """The setting of a section that trains no model: the profile's dataset and what the section uses instead."""
    return (f"Profile `{profile.name}`: {dataset_name(profile)} ({profile['description']}); nothing is trained for "
            f"this section: {what}.")


def _listed(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 4 else f"{len(names)} runs ({names[0]} ... {names[-1]})"


def dataset_name(profile: Profile) -> str:
    return DATASET_NAMES.get(profile["dataset"], profile["dataset"])


def corruption_label(key: str) -> str:
    """gaussian_noise -> Gaussian noise, jpeg_compression -> JPEG compression."""
    return key.replace("_", " ").replace("gaussian", "Gaussian").replace("jpeg", "JPEG")


def training_budget(profile: Profile, run: RunSpec) -> str:
    """A run's budget for a figure title: "4 epochs on 12,000 images"."""
    train = with_variant(profile.cfg, run.variant)["train"]
    images = "all" if train.get("train_subset") is None else f"{train['train_subset']:,}"
    return f"{train['epochs']} epochs on {images} images"


def seeds_text(runs: list[RunSpec]) -> str:
    """The seeds of the runs a plot draws, for its title."""
    seeds = sorted({run.seed for run in runs})
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"mean of {len(seeds)} seeds, bars: ±1 sd"


def plot_over_seeds(ax, x, values: pd.DataFrame, label: str, **style) -> None:
    """A line of the mean over seeds of `values` (one row per x, one column per seed) against `x`, with error bars
    of ±1 sd and each seed as a dot where there are several seeds."""
    mean = values.mean(axis=1)
    if values.shape[1] > 1:
        line = ax.errorbar(x, mean, yerr=values.std(axis=1), capsize=3, label=label, **style)
        for column in values:
            ax.scatter(x, values[column], s=10, alpha=0.35, color=line.lines[0].get_color(), zorder=1)
    else:
        ax.plot(x, mean, label=label, **style)


def _training(train: dict) -> str:
    images = "all" if train.get("train_subset") is None else f"{train['train_subset']:,}"
    return f"{train['epochs']} epochs on {images} training images, batch {train['batch_size']}"


def _profile_sentence(profile: Profile, trained: str, seeds: list[int]) -> str:
    return (f"Profile `{profile.name}`: {dataset_name(profile)} ({profile['description']}); {trained} "
            f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}.")


def rounded(value, decimals: int):
    """A float rounded half up as the decimal number it stands for (83.14999999999999, which is 100 - 16.85, and 83.15
    both give 83.2), so that every table, claim and page shows one model's number the same; anything else as it is."""
    if not isinstance(value, float) or math.isnan(value) or math.isinf(value):
        return value
    return float(Decimal(f"{value:.12g}").quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def number(value, decimals: int = 1) -> str:
    """A number as every table prints it: rounded() to `decimals`, blank where there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{rounded(float(value), decimals):.{decimals}f}"


@dataclass(frozen=True)
class Table:
    """A table of a section: its rows and its caption; its numbers are rounded once, to the decimals of `floatfmt`,
    and written so to .csv, .md and .tex alike."""
    frame: pd.DataFrame
    caption: str
    floatfmt: str = ".1f"

    @property
    def decimals(self) -> int:
        return int(self.floatfmt.strip(".f"))

    def rounded(self) -> pd.DataFrame:
        """The rows as written: numbers rounded, no number a blank cell (None), never "nan"."""
        return pd.DataFrame({column: pd.Series([None if pd.isna(v) else rounded(v, self.decimals) for v in values],
                                               index=values.index, dtype=object)
                             for column, values in self.frame.items()})

    def _repr_html_(self) -> str:  # a notebook shows the caption above the rows
        return f"<p>{html.escape(self.caption)}</p>{self.rounded().to_html(index=False)}"


def write_tables(profile: Profile, tables: dict[str, Table]) -> None:
    """tables/<name>.csv, .md (caption + table) and .tex (booktabs table) of each table, from the same rounded
    numbers."""
    base = profile.products / "tables"
    for name, t in tables.items():
        df, floatfmt = t.rounded(), t.floatfmt
        write_text(base / f"{name}.csv", df.to_csv(index=False))
        write_text(base / f"{name}.md", f"{t.caption}\n\n{df.to_markdown(index=False, floatfmt=floatfmt)}\n")
        cells = df.map(lambda v: format(v, floatfmt) if isinstance(v, float) else v)  # as .md prints them
        latex = cells.to_latex(index=False, caption=t.caption, label=f"tab:{name}", na_rep="--", escape=True)
        write_text(base / f"{name}.tex", latex)


def save_figure(fig, profile: Profile, name: str, caption: str) -> None:
    """figures/<name>.png and .pdf, and its caption, figures/<name>.md, which the index shows beside it. Every text of
    the figure must be readable on a slide (check_readable)."""
    check_readable(fig, name)
    for ext in ("png", "pdf"):
        with atomic_path(profile.products / "figures" / f"{name}.{ext}") as tmp:
            # Fixed metadata keeps the files identical when the figure is (png: no timestamp; pdf: no date).
            metadata = {"Software": None} if ext == "png" else {"CreationDate": None}
            fig.savefig(tmp, dpi=150, bbox_inches="tight", metadata=metadata)
    write_text(profile.products / "figures" / f"{name}.md", caption.strip() + "\n")


def figure_text(finding: str, details: str) -> str:
    """A figure's caption: its finding in one sentence on the first line (what the README's headline shows under the
    figure), then what it shows, on which models and budget."""
    return f"{finding.strip()}\n{details.strip()}"


def check_readable(fig, name: str) -> None:
    """Every text drawn on `fig` is at least MIN_FONT_POINTS at the size the figure is saved (bbox_inches="tight"
    crops, it does not scale)."""
    fig.canvas.draw()  # tick labels get their text when drawn
    hidden = {id(label) for ax in fig.axes if not ax.axison for label in ax.get_xticklabels() + ax.get_yticklabels()}
    small = sorted({(round(t.get_fontsize(), 1), t.get_text()[:40]) for t in fig.findobj(Text)
                    if t.get_visible() and t.get_text().strip() and id(t) not in hidden
                    and t.get_fontsize() < MIN_FONT_POINTS})
    if small:
        raise ValueError(f"figure {name}: text smaller than {MIN_FONT_POINTS} pt: {small[:5]}")


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
    write_text(profile.products / "claims" / f"{section_key}.csv", df.to_csv(index=False))
    return df
