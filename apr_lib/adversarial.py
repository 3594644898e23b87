"""Table 3 (section 5.1, "Adversarial Attack"): FGSM adversarial training, alone and with Cutout or APR, against
AutoAttack.

- `autoattack`: pyautoattack's AutoAttack (l_inf) on a batch of test images, attack after attack;
- `suite_autoattack`: the `autoattack` evaluation suite (apr_lib.evaluate.SUITES): clean and robust accuracy on the
  first N test images for each N of the profile's `autoattack.n_images` (the paper's protocol: the first 1,000);
- `table3_metrics`, `table3`, `table3_caption`, `table3_claims`: the table, ours beside the paper's, and its claims.

The training side lives with the other methods: `train.adversarial: fgsm` (apr_lib.methods) on top of any method's
batch and `train.schedule: cyclic` (apr_lib.train); each Table 3 row is a `<method>@<variant>` run whose variant
carries the released per-row settings (facts 1.8).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd
import torch
from pyautoattack import AutoAttack
from tqdm.auto import tqdm

from apr_lib.config import Profile, metrics_file, table_runs, with_variant
from apr_lib.data import load_split
from apr_lib.errors import ProfileError, UserError
from apr_lib.paper import paper_table3
from apr_lib.report import claim, describe_runs
from apr_lib.tables import METHOD_LABELS, measured

STANDARD_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")  # AutoAttack's standard l_inf ensemble, in its order
PAPER_IMAGES = 1000  # the paper's numbers are on the first 1,000 CIFAR-10 test images (facts 1.8)


def attack_list(attacks: str | list[str]) -> list[str]:
    """The profile's `autoattack.attacks`: "standard" or a list of attacks of the standard ensemble."""
    return list(STANDARD_ATTACKS) if attacks == "standard" else list(attacks)


def describe_attacks(attacks: str | list[str]) -> str:
    names = ", ".join(a.upper() for a in attack_list(attacks))
    if attacks == "standard":
        return f"standard AutoAttack ({names})"
    return (f"reduced AutoAttack: {names} only, of the standard ensemble (a weaker attack than the paper's standard "
            "AutoAttack, so our accuracy under it is an upper bound on standard AutoAttack's)")


def autoattack(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float,
               attacks: list[str], batch_size: int, seed: int) -> tuple[torch.Tensor, dict, dict]:
    """Which images (uint8, (N, C, H, W)) `model` classifies correctly, clean and under AutoAttack (l_inf, `epsilon`
    on [0, 1] images), attack after attack.

    Each attack is pyautoattack's, set up as its standard version sets it, and runs batch by batch on the images no
    earlier attack broke, as AutoAttack's own loop does; calling it per attack and batch only adds a progress bar
    and the accuracy after each attack. Returns (clean (N,) bool, {attack: robust (N,) bool after it},
    {attack: seconds}).
    """
    device = next(model.parameters()).device
    x, y = images.float() / 255, labels
    adversary = AutoAttack(model, device=device, eps=epsilon, norm="Linf", seed=seed, version="standard")
    with torch.no_grad():
        clean = torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu()
                           for i in range(0, len(x), batch_size)]) == y
    robust, after, seconds = clean.clone(), {}, {}
    for attack in attacks:
        started = time.perf_counter()
        adversary.attacks_to_run = [attack]
        still_correct = robust.nonzero().flatten()
        for batch in tqdm(still_correct.split(batch_size), desc=f"{attack} on {len(still_correct)} images",
                          unit="batch", disable=None):
            _, predicted = adversary.run_standard_evaluation(x[batch], y[batch], batch_size=batch_size)
            robust[batch] = predicted.cpu() == y[batch]
        after[attack], seconds[attack] = robust.clone(), time.perf_counter() - started
    return clean, after, seconds


def percent(flags: torch.Tensor) -> float:
    return 100.0 * flags.double().mean().item()


def suite_autoattack(profile: Profile, model: torch.nn.Module) -> tuple[dict, str]:
    """Clean and AutoAttack accuracy (%) on the first N test images, for each N of `autoattack.n_images`; the
    attack runs once, on the largest N, and each smaller N reads its first images."""
    settings = profile["autoattack"]
    test = load_split(profile["dataset"], Path(profile["data_root"]), train=False)
    counts = settings["n_images"]
    if max(counts) > len(test.labels):
        raise ProfileError(f"{profile.path}: autoattack.n_images asks for {max(counts)} test images, but the "
                           f"{profile['dataset']} test set has {len(test.labels)}; lower autoattack.n_images")
    attacks = attack_list(settings["attacks"])
    n, cpu_started = max(counts), time.process_time()
    clean, after, seconds = autoattack(model, test.images[:n], test.labels[:n], settings["epsilon_levels"] / 255,
                                       attacks, settings["batch_size"], settings["seed"])
    robust = after[attacks[-1]]
    result = {"norm": "Linf", "epsilon_levels": settings["epsilon_levels"], "attacks": attacks,
              "attack_set": "standard" if settings["attacks"] == "standard" else "reduced",
              "images": "the first N of the test set", "seed": settings["seed"],
              "seconds": sum(seconds.values()), "seconds_per_attack": seconds,
              "cpu_seconds": time.process_time() - cpu_started,  # beside the wall time, which a busy machine inflates
              "results": [{"n": k, "clean_accuracy": percent(clean[:k]), "robust_accuracy": percent(robust[:k]),
                           "robust_accuracy_after": {a: percent(after[a][:k]) for a in attacks}} for k in counts]}
    first = result["results"][0]
    return result, (f"AutoAttack ({', '.join(attacks)}) on the first {first['n']} test images: clean "
                    f"{first['clean_accuracy']:.1f}%, robust {first['robust_accuracy']:.1f}% "
                    f"({result['seconds']:.0f} s on {n} images)")


# ---- the table and its claims ----

def row_key(profile: Profile, method: str, variant: str) -> str:
    """The paper's row of a run: fgsm (FGSM alone = method standard), fgsm_<method>; a run trained without
    adversarial examples keeps its method's name (no paper row)."""
    if with_variant(profile.cfg, variant)["train"].get("adversarial") != "fgsm":
        return method
    return "fgsm" if method == "standard" else f"fgsm_{method}"


def row_label(key: str) -> str:
    if key == "fgsm":
        return "FGSM"
    if key.startswith("fgsm_"):
        method = key.removeprefix("fgsm_")
        return f"FGSM w/ {METHOD_LABELS.get(method, method)}"
    return METHOD_LABELS.get(key, key)


def table3_metrics(profile: Profile) -> pd.DataFrame:
    """One row per run of Table 3 and N of `autoattack.n_images`: clean and robust accuracy on the first N test
    images, the accuracy after each attack, and the clean suite's test accuracy (%); `attack_seconds` and
    `attack_cpu_seconds` are the wall and CPU time of the run's whole attack (on the largest N)."""
    settings, rows = profile["autoattack"], []
    for run in table_runs(profile, "table3_adversarial"):
        (error,) = measured(profile, run, "clean", "error")
        attacks, results, seconds, cpu_seconds = measured(profile, run, "autoattack", "attacks", "results", "seconds",
                                                          "cpu_seconds")
        if (attacks, [r["n"] for r in results]) != (attack_list(settings["attacks"]), settings["n_images"]):
            raise UserError(f"{metrics_file(profile, run, 'autoattack')} holds attacks {attacks} on "
                            f"{[r['n'] for r in results]} images, but {profile.path} now asks for autoattack.attacks "
                            f"{settings['attacks']} and n_images {settings['n_images']}. Delete it and re-run "
                            "`snakemake --cores 4 all`.")
        for r in results:
            rows.append({"arch": run.arch, "row": row_key(profile, run.method, run.variant), "method": run.method,
                         "variant": run.variant, "seed": run.seed, "attack_seconds": seconds,
                         "attack_cpu_seconds": cpu_seconds, "n": r["n"],
                         "test_acc": 100 - error,
                         "clean": r["clean_accuracy"], "robust": r["robust_accuracy"],
                         **{f"after_{a}": r["robust_accuracy_after"][a] for a in attacks}})
    return pd.DataFrame(rows)


def table3_settings(profile: Profile) -> pd.DataFrame:
    """What each row of Table 3 trains with: its run and the settings its variant sets (from the profile)."""
    rows = []
    for run in table_runs(profile, "table3_adversarial"):
        cfg = with_variant(profile.cfg, run.variant)
        train, apr = cfg["train"], cfg["apr"]
        uses_aprs, uses_aprp = run.method in ("apr_s", "apr_sp"), run.method in ("apr_p", "apr_sp")
        rows.append({"method": row_label(row_key(profile, run.method, run.variant)), "run": run.name,
                     "adversarial": train.get("adversarial"), "schedule": train.get("schedule", "step"),
                     "lr": train["lr"], "epochs": train["epochs"], "train_images": train.get("train_subset"),
                     "p_prob": apr["p_prob"] if uses_aprp else None,
                     "s_prob": apr.get("s_prob", 1.0) if uses_aprs else None,
                     "p_after_normalize": apr["p_after_normalize"] if uses_aprp else None,
                     "p_loss": apr.get("p_loss", "sum_of_halves") if uses_aprp else None})
    df = pd.DataFrame(rows)
    return df.astype(object).where(df.notna(), None)


def table3(profile: Profile, per_run: pd.DataFrame) -> pd.DataFrame:
    """Table 3: per arch, row and N, clean accuracy and accuracy under AutoAttack (`ours`) on the first N test images
    (means over seeds), beside the paper's on the rows of the profile's first N (the paper's protocol); `test_acc` is
    the accuracy on the profile's whole clean test set."""
    paper, protocol = paper_table3(), profile["autoattack"]["n_images"][0]
    grouped = per_run.groupby(["arch", "row", "n"], sort=False)
    df = grouped.agg(test_acc=("test_acc", "mean"), clean=("clean", "mean"), ours=("robust", "mean")).reset_index()
    if len(profile["seeds"]) > 1:
        df.insert(df.columns.get_loc("ours") + 1, "ours_sd", grouped["robust"].std().to_numpy())
    on_protocol = df["n"] == protocol
    df.insert(df.columns.get_loc("clean") + 1, "clean_paper",
              [paper.get(r, {}).get("clean") if p else None for r, p in zip(df["row"], on_protocol)])
    df["paper"] = [paper.get(r, {}).get("autoattack") if p else None for r, p in zip(df["row"], on_protocol)]
    df["method"] = df.pop("row").map(row_label)
    df["images"] = [f"first {n:,}" for n in df.pop("n")]
    df = df[["arch", "method", "images", *[c for c in df.columns if c not in ("arch", "method", "images")]]]
    return df.astype(object).where(df.notna(), None)  # None: blank cells in the csv and markdown, not "nan"


def table3_caption(profile: Profile) -> str:
    settings, adv = profile["autoattack"], profile["adv"]
    runs = table_runs(profile, "table3_adversarial")
    protocol = settings["n_images"][0]
    return (f"Table 3: clean accuracy (`clean`) and accuracy under AutoAttack (`ours`), %, higher is better, on the "
            f"first N test images (`images`); `test_acc`: clean accuracy on the profile's test set. Ours: "
            f"{describe_runs(profile, runs)} FGSM adversarial training from a random start (epsilon "
            f"{adv['epsilon_levels']}/255, step {adv['step_levels']}/255) with a cyclic learning rate; each row "
            f"trains with its variant's settings (`variants:` in {profile.path}: peak learning rate, epochs scaled "
            f"from the released ones, APR probabilities). Attack: {describe_attacks(settings['attacks'])}, l_inf "
            f"epsilon {settings['epsilon_levels']}/255. Paper (`clean_paper`, `paper`): CIFAR-10, PreActResNet-18, "
            f"standard AutoAttack on the first {PAPER_IMAGES:,} test images, from params/paper_results.yaml, beside "
            f"our rows on the first {protocol:,}.")


def table3_claims(profile: Profile, per_run: pd.DataFrame) -> list[dict]:
    """The direction of section 5.1's statements on Table 3, on the first N test images of the paper's protocol
    (the profile's first `autoattack.n_images`), means over seeds."""
    protocol = profile["autoattack"]["n_images"][0]
    ours = per_run[per_run["n"] == protocol].groupby("row")[["clean", "robust"]].mean()
    paper = paper_table3()
    source = "Table 3 and section 5.1 (Adversarial Attack)"
    seeds = len(profile["seeds"])
    worst_se = max((math.sqrt(p * (100 - p) / protocol) for p in ours.to_numpy().flatten()), default=0.0)
    note = (f"{seeds} seed{'s' if seeds > 1 else ''}; first {protocol:,} test images; "
            f"{describe_attacks(profile['autoattack']['attacks']).split(' (')[0]}; one accuracy's binomial standard "
            f"error is up to {worst_se:.1f} points here, so smaller differences are within sampling noise")
    metric_names = {"clean": "clean accuracy %", "robust": "AutoAttack accuracy %"}
    paper_metric = {"clean": "clean", "robust": "autoattack"}

    def higher(claim_text: str, comparisons: list[tuple[str, str, str]], at_least: bool = False) -> dict:
        """Holds if, for every (metric, better, worse), ours[better] > ours[worse] (>= with `at_least`)."""
        measure = "; ".join(f"{metric_names[m]}, {row_label(b)} vs {row_label(w)}" for m, b, w in comparisons)
        paper_text = "; ".join(f"{paper[b][paper_metric[m]]} vs {paper[w][paper_metric[m]]}" for m, b, w in comparisons)
        missing = sorted({r for _, b, w in comparisons for r in (b, w) if r not in ours.index})
        if missing:
            return claim(claim_text, source, measure, "", paper_text, None,
                         f"not in this profile's table3_adversarial runs: {', '.join(map(row_label, missing))}")
        ours_text = "; ".join(f"{ours.loc[b, m]:.1f} vs {ours.loc[w, m]:.1f}" for m, b, w in comparisons)
        holds = all(ours.loc[b, m] >= ours.loc[w, m] if at_least else ours.loc[b, m] > ours.loc[w, m]
                    for m, b, w in comparisons)
        return claim(claim_text, source, measure, ours_text, paper_text, bool(holds), note)

    apr_rows = ["fgsm_apr_p", "fgsm_apr_s", "fgsm_apr_sp"]
    return [
        higher("Cutout is not able to defend against adversarial attacks as well as the FGSM baseline.",
               [("robust", "fgsm", "fgsm_cutout")]),
        higher("APR (APR-P, APR-S and APR-SP) defends against AutoAttack better than FGSM alone.",
               [("robust", r, "fgsm") for r in apr_rows]),
        higher("APR defends against AutoAttack while maintaining the clean test accuracy of FGSM (APR-P, APR-S "
               "and APR-SP are each at least as accurate on clean images).",
               [("clean", r, "fgsm") for r in apr_rows], at_least=True),
        higher("APR-S improves AutoAttack accuracy more than APR-P.", [("robust", "fgsm_apr_s", "fgsm_apr_p")]),
        higher("The combination APR-SP defends against AutoAttack better than APR-P and APR-S alone.",
               [("robust", "fgsm_apr_sp", "fgsm_apr_p"), ("robust", "fgsm_apr_sp", "fgsm_apr_s")]),
        higher("APR-SP improves on FGSM both on clean images and against adversarial attacks.",
               [("clean", "fgsm_apr_sp", "fgsm"), ("robust", "fgsm_apr_sp", "fgsm")]),
    ]
