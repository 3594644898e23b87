"""Table 4 (ImageNet-C, section 5.2): test error, CE per corruption and mCE, ours beside the paper's; its claims.

`measure` reads the Table 1 runs of the profile's first architecture (errors averaged over seeds, cell by cell).
- A profile on ImageNet (its -C set the ImageNet-C folders) gets the paper's measure: CE_c normalised by
  AlexNet's errors (apr_lib.metrics.imagenet_ce), which needs all 15 corruptions at severities 1-5.
- Any other profile has no ImageNet-C. Beside the paper's numbers it reports a relative CE: each method's error
  summed over severities divided by our own Standard model's on the profile's -C set, x 100 (Standard = 100),
  labelled as exactly that. Its test error is the clean error on the profile's own test set.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from apr_lib.corruptions import COMMON
from apr_lib.errors import UserError
from apr_lib.metrics import imagenet_ce, mce, relative_ce
from apr_lib.names import CORRUPTIONS
from apr_lib.paper.paper_results import paper_table4
from apr_lib.paper.report import DATASET_NAMES, METHOD_LABELS, Table, claim, describe_runs, measured
from apr_lib.study.config import Profile, table_runs

KEY = "table4_imagenet_c"


def uses_alexnet(profile: Profile) -> bool:
    return profile["dataset"] == "imagenet"


def ours_label(profile: Profile) -> str:
    if uses_alexnet(profile):
        return "CE: normalised by AlexNet on ImageNet-C, as in the paper"
    name = DATASET_NAMES.get(profile["dataset"], profile["dataset"])
    return f"relative CE: normalised by our Standard model on {name}-C, not AlexNet on ImageNet-C"


def measure(profile: Profile) -> dict[str, dict]:
    """{method: {"test_error": %, "errors": {corruption: {severity: %}}}}, means over seeds, first architecture."""
    arch = profile["tables"]["table1_corruption"]["archs"][0]
    seeds: dict[str, list] = {}
    for run in table_runs(profile, "table1_corruption"):
        if run.arch == arch:
            seeds.setdefault(run.method, []).append(
                measured(profile, run, "clean", "error") + measured(profile, run, "corruption", "errors"))
    corruptions = sorted(profile["eval"]["corruptions"], key=CORRUPTIONS.index)  # the paper's order
    return {method: {"test_error": float(np.mean([test_error for test_error, _ in runs])),
                     "errors": {c: {s: float(np.mean([errors[c][s] for _, errors in runs])) for s in runs[0][1][c]}
                                for c in corruptions}}
            for method, runs in seeds.items()}


def table4(profile: Profile, measured_errors: dict[str, dict]) -> pd.DataFrame:
    """The paper's layout: per method a row of our numbers and a row of the paper's (`numbers`: ours / paper), each
    with `test_error`, the CE of each corruption and `mce` (%); blank where the paper has no such number."""
    if uses_alexnet(profile):
        ce = {m: imagenet_ce(v["errors"]) for m, v in measured_errors.items()}
    else:
        if "standard" not in measured_errors:
            raise UserError(f"{profile.path}: Table 4's relative CE is normalised by the Standard model; add "
                            "`standard` to tables.table1_corruption.methods")
        ce = {m: relative_ce(v["errors"], measured_errors["standard"]["errors"]) for m, v in measured_errors.items()}
    paper = paper_table4()
    rows = []
    for method, values in measured_errors.items():
        ours = {"test_error": values["test_error"], **ce[method], "mce": mce(ce[method])}
        rows += [{"method": METHOD_LABELS[method], "numbers": "ours", **ours},
                 {"method": METHOD_LABELS[method], "numbers": "paper",
                  **{measure: paper.get(method, {}).get(measure) for measure in ours}}]
    df = pd.DataFrame(rows)
    return df.astype(object).where(df.notna(), None)  # None: blank cells in the csv and markdown, not "nan"


def table4_caption(profile: Profile) -> str:
    corruptions = profile["eval"]["corruptions"]
    paper_only = ", ".join(m for m in paper_table4() if m not in profile["tables"]["table1_corruption"]["methods"])
    if uses_alexnet(profile):
        ours = f"Rows `ours`: {ours_label(profile)}; `mce` = mean of the 15 CE."
    else:
        name = DATASET_NAMES.get(profile["dataset"], profile["dataset"])
        ours = (f"Rows `ours`: {ours_label(profile)} (sum over severities {profile['eval']['severities']} of each "
                f"method's error / the same sum of our Standard model, x 100; Standard = 100); `mce` = their mean "
                f"over the {len(corruptions)} corruptions measured; `test_error` = clean error on the {name} test set.")
    return (f"Table 4: test error, corruption error (CE_c) and mCE (%, lower is better) per training method. {ours} "
            f"{describe_runs(profile, table_runs(profile, 'table1_corruption'))} "
            f"Runs: Table 1's runs of {profile['tables']['table1_corruption']['archs'][0]}. "
            f"Rows `paper`: ResNet-50 on ImageNet-C, CE normalised by AlexNet, from "
            f"params/paper_results.yaml (empty where the paper's Table 4 has no such method; its rows {paper_only} "
            "have no run here; they are in that file).")


def claims(profile: Profile, measured_errors: dict[str, dict]) -> list[dict]:
    """Section 5.2's claims on Table 4, as directions of our CE (AlexNet-normalised, or relative: see `ours_label`)."""
    df = table4(profile, measured_errors)
    ours = df[df["numbers"] == "ours"].set_index("method").drop(columns="numbers").T.astype(float)  # measure x method
    label = {m: METHOD_LABELS[m] for m in paper_table4() if METHOD_LABELS.get(m) in ours.columns}
    paper = pd.DataFrame(paper_table4())  # measures x methods
    source = "Table 4 (ImageNet-C, ResNet-50)"
    note = f"ours: {ours_label(profile)}"

    def missing(methods: list[str]) -> str:
        absent = [m for m in methods if m not in label]
        return f"not in this profile's table1_corruption.methods: {', '.join(absent)}" if absent else ""

    def lower_mce(claim_text: str, better: str, worse: list[str]) -> dict:
        measure = f"mCE %, {METHOD_LABELS[better]} vs " + " / ".join(METHOD_LABELS[w] for w in worse) + " (direction)"
        paper_text = " vs ".join(f"{paper.loc['mce', m]}" for m in [better] + worse)
        if missing([better] + worse):
            return claim(claim_text, source, measure, "", paper_text, None, missing([better] + worse))
        values = [ours.loc["mce", label[m]] for m in [better] + worse]
        test_errors = " vs ".join(f"{ours.loc['test_error', label[m]]:.1f}" for m in [better] + worse)
        return claim(claim_text, source, measure, " vs ".join(f"{v:.1f}" for v in values), paper_text,
                     bool(values[0] < min(values[1:])), f"{note}; test error % {test_errors}")

    # "almost every": at least 13 of 15 corruptions (all but two), the same share of fewer
    corruptions = [c for c in COMMON if c in ours.index]
    needed = math.ceil(13 / 15 * len(corruptions))
    every = "APR improves corruption robustness across almost every individual corruption."
    measure = (f"corruptions where APR-SP's CE is below Standard's (holds if at least {needed} of {len(corruptions)}"
               + ("" if len(corruptions) == 15 else ": 13 of 15, the same share") + ")")
    paper_count = f"{int((paper.loc[list(COMMON), 'apr_sp'] < paper.loc[list(COMMON), 'standard']).sum())} of 15"
    if missing(["apr_sp", "standard"]):
        every_claim = claim(every, source, measure, "", paper_count, None, missing(["apr_sp", "standard"]))
    else:
        lower = int((ours.loc[corruptions, label["apr_sp"]] < ours.loc[corruptions, label["standard"]]).sum())
        every_claim = claim(every, source, measure, f"{lower} of {len(corruptions)}", paper_count,
                            lower >= needed, note)
    return [
        lower_mce("APR-SP achieves 15% improvement than the baseline 80.6% mCE while maintaining test accuracy.",
                  "apr_sp", ["standard"]),
        lower_mce("APR-SP, without the more complex combination strategy of AutoAugment and AugMix, has a lower mCE "
                  "than both.", "apr_sp", ["autoaugment", "augmix"]),
        every_claim,
    ]


def tables(profile: Profile, measured_errors: dict[str, dict]) -> dict[str, Table]:
    return {KEY: Table(table4(profile, measured_errors), table4_caption(profile))}
