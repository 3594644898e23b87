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
from apr_lib.metrics import ALEXNET_ERROR, imagenet_ce, mce, relative_ce
from apr_lib.names import CORRUPTIONS
from apr_lib.paper.paper_results import paper_table4
from apr_lib.paper import evidence
from apr_lib.paper.table1_corruption import SURPASSES
from apr_lib.paper.report import (DATASET_NAMES, METHOD_LABELS, Table, claim, compare, describe_runs, measured,
                                  unmeasured)
from apr_lib.study.config import Profile, table_runs
from apr_lib.uncertainty import Estimate, image_weights, mean_over

KEY = "table4_imagenet_c"


def uses_alexnet(profile: Profile) -> bool:
    return profile["dataset"] == "imagenet"


def ours_label(profile: Profile) -> str:
    if uses_alexnet(profile):
        return "CE: normalised by AlexNet on ImageNet-C, as in the paper"
    name = DATASET_NAMES.get(profile["dataset"], profile["dataset"])
    return f"relative CE: normalised by our Standard model on {name}-C, not AlexNet on ImageNet-C"


def measure(profile: Profile) -> dict[str, dict]:
    """{method: {"test_error": %, "errors": {corruption: {severity: %}}}}, means over seeds, first architecture, the
    profile's own rows (Table 1's rows trained another way, `<method>@<variant>`, are not the paper's)."""
    arch = profile["tables"]["table1_corruption"]["archs"][0]
    seeds: dict[str, list] = {}
    for run in table_runs(profile, "table1_corruption"):
        if run.arch == arch and not run.variant:
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


def ce_estimates(profile: Profile) -> dict[str, dict[str, Estimate]]:
    """{method: {corruption: CE_c (%)}} per seed, resampled over the test images: AlexNet-normalised on ImageNet, else
    relative to our Standard model's seed mean (the same resamples, so the denominator varies with them)."""
    arch = profile["tables"]["table1_corruption"]["archs"][0]
    rows = evidence.rows(profile, "table1_corruption")
    summed, names = {}, []
    for method, by_arch in rows.items():
        if "@" in method or arch not in by_arch:
            continue
        errors, names = evidence.corruption_errors(profile, by_arch[arch])  # (S, C, V, N)
        per_image = errors.sum(2)                                          # summed over severities
        weights = image_weights(per_image.shape[-1])
        summed[method] = (per_image.mean(-1), per_image.astype(np.float32) @ weights.T / per_image.shape[-1])
    if uses_alexnet(profile):
        severities = len(profile["eval"]["severities"])
        reference = {c: 100 * severities * ALEXNET_ERROR[c] for c in names}
        denominators = [(reference[c], reference[c]) for c in names]
    else:
        point, replicates = summed["standard"]
        denominators = list(zip(point.mean(0), replicates.mean(0)))
    return {method: {c: Estimate(100 * point[:, k] / denominators[k][0], 100 * replicates[:, k] / denominators[k][1])
                     for k, c in enumerate(names)}
            for method, (point, replicates) in summed.items()}


def claims(profile: Profile, measured_errors: dict[str, dict]) -> list[dict]:
    """Section 5.2's claims on Table 4 on our CE (AlexNet-normalised, or relative: see `ours_label`), means over seeds
    with 95% intervals over seeds and test images. Where the profile has no ImageNet these runs are Table 1's, so a
    claim that Table 1 already tests on them is counted there."""
    source = "Table 4 (ImageNet-C, ResNet-50)"
    paper = pd.DataFrame(paper_table4())  # measures x methods
    note = f"ours: {ours_label(profile)}"
    proxy = not uses_alexnet(profile)
    texts = {"mce": "APR-SP achieves 15% improvement than the baseline 80.6% mCE while maintaining test accuracy.",
             "others": "APR-SP, without the more complex combination strategy of AutoAugment and AugMix, has a lower "
                       "mCE than both.",
             "every": "APR improves corruption robustness across almost every individual corruption."}
    absent = lambda methods: [m for m in methods if m not in measured_errors]  # noqa: E731
    if absent(["apr_sp", "standard"]):
        return [unmeasured(text, source, "paper", "mCE %", "", "not run", "not in this profile's "
                           f"table1_corruption.methods: {', '.join(absent(['apr_sp', 'standard']))}")
                for text in texts.values()]
    ce = ce_estimates(profile)
    mce_of = {m: mean_over(list(values.values())) for m, values in ce.items()}
    label = lambda m: METHOD_LABELS[m]  # noqa: E731
    lower_mce = lambda better, worse: compare("mCE %", (label(better), label(worse)), mce_of[better],  # noqa: E731
                                              mce_of[worse], -1, (paper.loc["mce", better], paper.loc["mce", worse]))
    runs = evidence.rows(profile, "table1_corruption")
    arch = profile["tables"]["table1_corruption"]["archs"][0]
    test_error = {m: evidence.clean_error(profile, runs[m][arch]) for m in ("apr_sp", "standard")}
    maintain = compare("test error %", (label("apr_sp"), label("standard")), test_error["apr_sp"],
                       test_error["standard"], -1,
                       (paper.loc["test_error", "apr_sp"], paper.loc["test_error", "standard"]), not_worse=True)
    corruptions = [c for c in COMMON if c in ce["apr_sp"]]
    need = math.ceil(13 / 15 * len(corruptions))  # "almost every": 13 of 15 (all but two), the same share of fewer
    every = [compare(f"CE_{c} %", (label("apr_sp"), label("standard")), ce["apr_sp"][c], ce["standard"][c], -1,
                     (paper.loc[c, "apr_sp"], paper.loc[c, "standard"])) for c in corruptions]
    paper_count = int((paper.loc[list(COMMON), "apr_sp"] < paper.loc[list(COMMON), "standard"]).sum())
    table1 = f"table1_corruption: {SURPASSES} (the same runs)"
    return [
        claim(texts["mce"], source, "paper", [lower_mce("apr_sp", "standard"), maintain],
              f"{note}; the paper's 15% is ImageNet's: here the mCE must be lower, the test error not higher"),
        unmeasured(texts["others"], source, "paper", "mCE %", "", "not run", "not in this profile's "
                   f"table1_corruption.methods: {', '.join(absent(['autoaugment', 'augmix']))}")
        if absent(["autoaugment", "augmix"]) else
        claim(texts["others"], source, "paper", [lower_mce("apr_sp", "autoaugment"), lower_mce("apr_sp", "augmix")],
              note, counted_in=table1 if proxy else ""),
        claim(texts["every"], source, "paper", every,
              f"{note}; holds if APR-SP's CE is lower on at least {need} of {len(corruptions)} corruptions (the paper: "
              f"{paper_count} of 15)", need=need),
    ]


def tables(profile: Profile, measured_errors: dict[str, dict]) -> dict[str, Table]:
    return {KEY: Table(table4(profile, measured_errors), table4_caption(profile))}
