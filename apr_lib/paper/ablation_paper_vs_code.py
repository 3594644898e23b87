"""Beyond the paper: APR-SP with each option where the paper's text and its released code differ.

The profile's `tables.ablation_paper_vs_code` lists APR-SP runs of variants: one trains as released (its `apr`
section is the profile's own), every other flips exactly one `apr` option to the paper's text and changes
nothing else, so each row compares two runs that differ in that option alone. The OOD score needs no run: the
`ood` suite measures both scores of every run.

Where an option cannot matter for the profile's data it is not trained and the table says why: on one-channel
images (Fashion-MNIST) the 3-D FFT over (C, H, W) is the 2-D FFT of the one channel, so both FFT modes give the
same images (tests/test_ablation.py checks it bit for bit).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from apr_lib.data import DATASETS
from apr_lib.errors import ProfileError
from apr_lib.paper import evidence
from apr_lib.paper.report import Table, claim, compare, describe_runs, load_metrics, unmeasured
from apr_lib.study.config import Profile, RunSpec, table_runs, with_variant

KEY = "ablation_paper_vs_code"  # the section key, the profile's `tables:` key and the table's name
METHOD = "apr_sp"


@dataclass(frozen=True)
class Option:
    label: str
    key: str          # under `apr:`; "" for the OOD score, an evaluation option
    released: object  # the released code's value (docs/released_code.md)
    paper: object     # what the paper's text says
    why: str


OPTIONS = (
    Option("FFT", "fft_mode", "channel3d", "per_channel",
           "released: one 3-D FFT over (C, H, W); paper: a 2-D DFT per channel (section 3)"),
    Option("APR-P probability", "p_prob", 0.6, 1.0,
           "released: 60% of batches recombined; paper: every pair (Eq. 5)"),
    Option("clean batch kept", "keep_clean", True, False,
           "released: CE(clean) + CE(recombined) on a 2B batch; paper: the recombined pairs only"),
    Option("APR-P after normalisation", "p_after_normalize", False, True,
           "paper silent; released CIFAR code recombines [0, 1] images, its FGSM and ImageNet code normalised ones"),
    Option("APR-S distracter", "s_distracter", "nested", "independent",
           "released: op2(op1(x)); paper: an independent augmentation of x (Eq. 6)"),
    Option("APR-S overflow", "s_overflow", "wrap", "clip",
           "released: uint8 wrap-around; paper: no quantisation (clipping is the closest reading)"),
    Option("OOD score", "", "max_logit", "msp",
           "released: maximum logit; paper: maximum softmax probability (section 5.1)"),
)
METRICS = ("clean_error", "corruption_error", "ood_auroc")  # %: clean error, mean corruption error, mean OOD AUROC


RELEASED = {option.key: option.released for option in OPTIONS if option.key}


def option_runs(profile: Profile) -> tuple[list[RunSpec], dict[str, list[RunSpec]]]:
    """The runs trained as released (every `apr` option of OPTIONS at its released value) and, per flipped option,
    the runs that flip it alone; each one run per seed."""
    runs = table_runs(profile, KEY)
    released, flipped = [], {}
    for run in runs:
        if run.method != METHOD:
            raise ProfileError(f"tables.{KEY}: the ablation is of {METHOD!r}; run {run.name} has method "
                               f"{run.method!r}")
        merged = with_variant(profile.cfg, run.variant)
        changed = sorted(k for k, value in RELEASED.items() if merged["apr"][k] != value)
        other = sorted(k for k in merged if k != "apr" and merged[k] != with_variant(profile.cfg, runs[0].variant)[k])
        if len(changed) > 1 or other:
            raise ProfileError(f"tables.{KEY}: variant {run.variant!r} changes {', '.join(changed + other)} from the "
                               "released code's values; each ablation run may differ from the released one in one "
                               "`apr` option only")
        (flipped.setdefault(changed[0], []) if changed else released).append(run)
    if not released:
        raise ProfileError(f"tables.{KEY}: no run trains as released (every `apr` option at the released code's value: "
                           f"{', '.join(f'{k}: {v}' for k, v in RELEASED.items())}); add a variant that sets them")
    return released, flipped


def _metrics(profile: Profile, runs: list[RunSpec], score: str) -> dict[str, float]:
    """Each metric's mean over the runs' seeds."""
    values = [{"clean_error": load_metrics(profile, run, "clean")["error"],
               "corruption_error": load_metrics(profile, run, "corruption")["mean_corruption_error"],
               "ood_auroc": load_metrics(profile, run, "ood")[score]["mean"]["auroc"]} for run in runs]
    return {m: float(np.mean([v[m] for v in values])) for m in METRICS}


def measure(profile: Profile) -> pd.DataFrame:
    """One row per option: its released and paper values, and each metric of the runs as released and as the
    paper's text says (means over seeds; blank where those runs do not exist, with the reason in `note`)."""
    released_runs, flipped = option_runs(profile)
    score = profile["ood"]["score"]
    released = _metrics(profile, released_runs, score)
    channels = DATASETS[profile["dataset"]].channels
    rows = []
    for option in OPTIONS:
        paper, note, seeds = {m: np.nan for m in METRICS}, option.why, len(released_runs)
        if option.key == "":  # an evaluation option: the released runs, scored both ways
            released_row = {**released, "ood_auroc": _metrics(profile, released_runs, option.released)["ood_auroc"]}
            paper = _metrics(profile, released_runs, option.paper)
            note += "; the same models, so the clean and corruption errors do not change"
        else:
            released_row = released
            if option.key in flipped:
                paper, seeds = _metrics(profile, flipped[option.key], score), min(seeds, len(flipped[option.key]))
                value = with_variant(profile.cfg, flipped[option.key][0].variant)["apr"][option.key]
                if value != option.paper:
                    note += f"; run with {value!r}, not the paper's {option.paper!r}"
            elif option.key == "fft_mode" and channels == 1:
                note = (f"identical on 1-channel data ({profile['dataset']}): both FFT modes compute the same images, "
                        "so this option was not trained")
            else:
                note = f"not run: no variant in tables.{KEY} flips apr.{option.key}"
        if option.key and profile["apr"][option.key] != option.released:
            note += f"; this profile's own value elsewhere is {profile['apr'][option.key]!r}"
        rows.append({"option": option.label, "released": str(option.released), "paper_text": str(option.paper),
                     "seeds": seeds, **{f"{m}_released": released_row[m] for m in METRICS},
                     **{f"{m}_paper_text": paper[m] for m in METRICS}, "note": note})
    return pd.DataFrame(rows)


def caption(profile: Profile) -> str:
    runs = table_runs(profile, KEY)
    return ("The paper vs its released code (beyond the paper): APR-SP with each option as released (`_released`) "
            "and as the paper's text says (`_paper_text`), all other options as released; clean error and mean "
            f"corruption error (%, lower is better) and mean OOD AUROC over {', '.join(profile['ood']['sets'])} "
            f"(%, higher is better; score {profile['ood']['score']} except in the OOD-score row), means over `seeds` "
            f"seeds. Ours: {describe_runs(profile, runs)} A short schedule: the claims' intervals say which "
            "differences the runs can tell apart. What the released code does: docs/released_code.md.")


def claims(profile: Profile, df: pd.DataFrame) -> list[dict]:
    """The authors' reason for the released probabilities (a reply on the released code's issue tracker, not the
    paper): too many augmentations hurt accuracy on clean images; both ways of augmenting more (APR-P on every
    batch, no clean batch) must raise the clean error."""
    source = "authors' reply on the released code's issues (not in the paper)"
    text = ("Applying the augmentations to every batch (too many data augmentations) has a negative impact on the "
            "clean images.")
    released_runs, flipped = option_runs(profile)
    missing = [key for key in ("p_prob", "keep_clean") if key not in flipped]
    if missing:
        return [unmeasured(text, source, "released code", "clean error %, paper's text - released", "stated, no numbers",
                           "not run", f"no variant in tables.{KEY} flips apr.{', apr.'.join(missing)}")]
    released = evidence.clean_error(profile, released_runs)
    conditions = [compare("clean error %", (what, "released"), evidence.clean_error(profile, flipped[key]), released, +1,
                          "stated, no numbers", digits=2)
                  for key, what in (("p_prob", "APR-P on every batch (p 1.0)"),
                                    ("keep_clean", "recombined pairs only (no clean batch)"))]
    return [claim(text, source, "released code", conditions, "both ways of augmenting more must raise the clean error")]


def changes(df: pd.DataFrame) -> pd.DataFrame:
    """Per option, the paper's-text run minus the released run, in points (positive: higher error or AUROC)."""
    indexed = df.set_index("option")
    return pd.DataFrame({f"{m}_change": indexed[f"{m}_paper_text"] - indexed[f"{m}_released"] for m in METRICS})


def tables(profile: Profile, df: pd.DataFrame) -> dict[str, Table]:
    return {KEY: Table(df, caption(profile), floatfmt=".2f")}
