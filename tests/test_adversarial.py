"""Table 3: FGSM training on top of any method, the cyclic schedule, AutoAttack, the table and its claims."""
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from apr_lib import load_run
from apr_lib.adversarial import autoattack, suite_autoattack
from apr_lib.study.config import (RunSpec, load_profile, run_config, table_runs, validate_profile, with_variant)
from apr_lib.data import load_split
from apr_lib.errors import ProfileError
from apr_lib.methods import TrainingMethod, apply_with_probability, fgsm_random_start
from apr_lib.models import build_model
from apr_lib.paper.table3_adversarial import claims as table3_claims, measure as table3_metrics, table3
from apr_lib.train import lr_schedule, train_run
import fakes
from conftest import tiny_profile

torch.set_num_threads(1)

ROWS = {"standard@fgsm": "fgsm", "cutout@fgsm": "fgsm_cutout", "apr_p@fgsm_apr_p": "fgsm_apr_p",
        "apr_s@fgsm_apr_s": "fgsm_apr_s", "apr_sp@fgsm_apr_sp": "fgsm_apr_sp",
        "standard@fgsm_duplicated": "fgsm_duplicated"}
RELEASED_EPOCHS = {"fgsm": 30, "fgsm_apr_p": 55, "fgsm_apr_s": 65, "fgsm_apr_sp": 90,  # docs/released_code.md
                   "fgsm_duplicated": 30}  # the control trains as FGSM's row


def fmnist_model() -> nn.Module:
    return build_model("small_cnn", 1, 10, (0.2860,), (0.3530,))


# ---- the variants of each profile reach the runs ----

@pytest.mark.parametrize("name", ["tiny", "default", "cifar"])
def test_each_row_runs_its_own_variant(name):
    profile = load_profile(name)
    runs = table_runs(profile, "table3_adversarial")
    rows = [f"{r.method}@{r.variant}" for r in runs]
    assert (list(dict.fromkeys(rows)) == list(ROWS) and len(rows) == len(ROWS) * len(profile["seeds"])
            if name != "tiny" else set(rows) <= set(ROWS))
    for run in runs:
        config = run_config(profile, run)
        train = config["train"]
        assert (train["adversarial"], train["schedule"], config["variant"]) == ("fgsm", "cyclic", run.variant)
        assert config["adv"] == profile["adv"]  # FGSM's epsilon and step enter every adversarial run's config
    sp = run_config(profile, RunSpec(profile["dataset"], runs[-1].arch, "apr_sp", profile["seeds"][0], "fgsm_apr_sp"))
    assert (sp["apr"]["p_prob"], sp["apr"]["s_prob"], sp["apr"]["p_loss"]) == (0.16, 0.9, "mean")
    assert sp["apr"]["p_after_normalize"] is True  # the released FGSM code recombines normalised images
    # The epochs keep the released ratios 30 : 55 : 65 : 90 (to a rounded epoch).
    epochs = {r.variant: with_variant(profile.cfg, r.variant)["train"]["epochs"] for r in runs}
    scale = epochs["fgsm"] / RELEASED_EPOCHS["fgsm"]
    assert all(abs(epochs[v] - scale * RELEASED_EPOCHS[v]) <= 0.5 for v in epochs)
    # Table 1's runs are untouched: the profile's own train section has no adversarial or cyclic key.
    assert "adversarial" not in profile["train"] and "schedule" not in profile["train"]


def test_cifar_profile_uses_the_released_settings():
    profile = load_profile("cifar")
    assert profile["tables"]["table3_adversarial"]["archs"] == ["preact_resnet18"]
    released = {"fgsm": (0.2, 30), "fgsm_apr_p": (0.22, 55), "fgsm_apr_s": (0.23, 65), "fgsm_apr_sp": (0.20, 90)}
    for variant, (lr, epochs) in released.items():
        train = with_variant(profile.cfg, variant)["train"]
        assert (train["lr"], train["epochs"], train["batch_size"], train["nesterov"]) == (lr, epochs, 128, False)
    assert profile["autoattack"]["attacks"] == "standard"
    assert profile["autoattack"]["n_images"] == [1000, 10000]  # the paper's protocol, then the whole test set


def test_method_at_variant_entries_are_checked(tmp_path):
    profile = load_profile("tiny")
    cfg = json.loads(json.dumps(profile.cfg))
    cfg["tables"]["table3_adversarial"]["methods"][0] = "standard@fgsn"
    with pytest.raises(ProfileError, match=r"tables.table3_adversarial.methods \(<method>@<variant>\): unknown "
                                           r"value 'fgsn'"):
        validate_profile(cfg, tmp_path / "x.yaml")
    cfg["tables"]["table3_adversarial"]["methods"][0] = "standrd@fgsm"
    with pytest.raises(ProfileError, match="tables.table3_adversarial.methods: unknown value 'standrd'"):
        validate_profile(cfg, tmp_path / "x.yaml")


# ---- training: FGSM on top of a method, the loss, APR-S's probability, the cyclic schedule ----

def tiny_config(tmp_path, fmnist_root, method: str, variant: dict, **train) -> dict:
    path = tiny_profile(tmp_path, fmnist_root, train={"train_subset": 128, "batch_size": 64, **train},
                        variants={"adv": variant})
    return run_config(load_profile(str(path)), RunSpec("fmnist", "small_cnn", method, 0, "adv"))


def test_fgsm_trains_on_examples_within_epsilon_of_all_2b_inputs(tmp_path, fmnist_root):
    config = tiny_config(tmp_path, fmnist_root, "apr_p", {"train": {"adversarial": "fgsm"}, "apr": {"p_prob": 1.0}})
    data = load_split("fmnist", fmnist_root, train=True)
    images, labels = data.images[:16], data.labels[:16]
    model = fmnist_model().train()
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    TrainingMethod("apr_p", config, torch.Generator().manual_seed(0)).loss(model, images, labels)
    clean, _ = TrainingMethod("apr_p", config, torch.Generator().manual_seed(0)).augment(images, labels)
    assert [len(x) for x in seen] == [32, 32]  # the attack's forward pass and the training one, both on 2B images
    perturbation = seen[1] - clean.clamp(0, 1)  # APR-P's images may leave [0, 1]; the attack clips them back
    epsilon = config["adv"]["epsilon_levels"] / 255
    assert perturbation.abs().max() == pytest.approx(epsilon, abs=1e-6)
    assert (perturbation.abs().amax(dim=(1, 2, 3)) > 0).all()  # every image of both halves is attacked
    assert seen[1].min() >= 0 and seen[1].max() <= 1


@pytest.mark.parametrize("profile_name", ["default", "cifar"])
@pytest.mark.parametrize("row", ["apr_s@fgsm_apr_s", "standard@fgsm_duplicated"])
def test_released_apr_s_row_and_its_control_train_on_the_batch_twice_from_two_random_starts(profile_name, row):
    # The released FGSM script trains on cat([X, APR-P(X)]) with a mean loss and attacks all 2B images: its APR-S row
    # (prob-p 0) sees [X, X], each copy from its own random start; the control does the same without APR.
    profile = load_profile(profile_name)
    method, variant = row.split("@")
    config = run_config(profile, RunSpec(profile["dataset"], "small_cnn", method, 0, variant))
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (8,))
    x, targets = TrainingMethod(method, config, torch.Generator().manual_seed(0)).augment(images, labels)
    assert len(x) == 16 and torch.equal(x[:8], x[8:]) and torch.equal(targets, labels.repeat(2))
    model = fmnist_model().eval()
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    loss = TrainingMethod(method, config, torch.Generator().manual_seed(0)).loss(model, images, labels)
    attacked = seen[-1]
    assert len(attacked) == 16 and not torch.equal(attacked[:8], attacked[8:])  # two independent random starts
    assert (attacked - x).abs().max() <= config["adv"]["epsilon_levels"] / 255 + 1e-6
    with torch.no_grad():
        assert loss.item() == pytest.approx(F.cross_entropy(model(attacked), targets).item(), rel=1e-5)  # mean of 2B


def test_duplicated_batch_is_refused_where_the_batch_already_pairs_images(tmp_path, fmnist_root):
    config = tiny_config(tmp_path, fmnist_root, "apr_p", {"train": {"adversarial": "fgsm", "duplicate_batch": True}})
    with pytest.raises(ProfileError, match="train.duplicate_batch does not apply to method 'apr_p'"):
        TrainingMethod("apr_p", config)


def test_fgsm_step_raises_the_loss():
    torch.manual_seed(0)
    model, x, y = fmnist_model().eval(), torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    adversarial = fgsm_random_start(model, x, y, 8 / 255, 10 / 255, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert F.cross_entropy(model(adversarial), y) > F.cross_entropy(model(x), y)


def test_two_step_fgsm_training_with_the_cyclic_schedule(tmp_path, fmnist_root, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tmp_path, fmnist_root, "standard", {"train": {"adversarial": "fgsm", "schedule": "cyclic",
                                                                        "lr": 0.2, "epochs": 1}})
    metrics = train_run(config, tmp_path / "run", tmp_path / "train.json", progress=False)
    assert metrics["history"][0]["loss"] > 0 and len(metrics["history"]) == 1  # 128 images, batch 64: two steps
    assert metrics["history"][0]["lr_end"] == pytest.approx(0.0)  # the cyclic schedule ends where it began
    model, saved = load_run(tmp_path / "run", "cpu")
    assert saved["train"]["adversarial"] == "fgsm" and not model.training


def test_cyclic_schedule_is_one_triangle_with_momentum_mirrored():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0, momentum=0.9)
    schedule = lr_schedule(optimizer, {"schedule": "cyclic", "lr": 0.2, "momentum": 0.9}, total_steps=10)
    lrs, momenta = [], []
    for _ in range(11):
        lrs.append(optimizer.param_groups[0]["lr"])
        momenta.append(optimizer.param_groups[0]["momentum"])
        optimizer.step()
        schedule.step()
    assert lrs == pytest.approx([0.2 * min(k, 10 - k) / 5 for k in range(11)])
    assert momenta[0] == pytest.approx(0.9) and momenta[5] == pytest.approx(0.8) and momenta[10] == pytest.approx(0.9)


def test_step_schedule_is_still_the_default():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    schedule = lr_schedule(optimizer, {"lr": 0.1, "lr_milestones": [0.5], "lr_gamma": 0.2}, total_steps=4)
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs == pytest.approx([0.1, 0.1, 0.02, 0.02])


def test_cyclic_adversarial_run_resumes_exactly(tmp_path, fmnist_root, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tmp_path, fmnist_root, "apr_sp", {"train": {"adversarial": "fgsm", "schedule": "cyclic",
                                                                      "epochs": 2}, "apr": {"s_prob": 0.5}})
    uninterrupted = train_run(config, tmp_path / "whole", tmp_path / "whole.json", progress=False)

    import apr_lib.train
    save_state = apr_lib.train.save_state

    def killed_after_first_epoch(obj, path):
        save_state(obj, path)
        if isinstance(obj, dict) and obj.get("epoch") == 0:
            raise KeyboardInterrupt  # as if the job were killed right after the first checkpoint

    monkeypatch.setattr(apr_lib.train, "save_state", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_run(config, tmp_path / "resumed", tmp_path / "resumed.json", progress=False)
    monkeypatch.setattr(apr_lib.train, "save_state", save_state)
    resumed = train_run(config, tmp_path / "resumed", tmp_path / "resumed.json", progress=False)
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in uninterrupted["history"]]
    weights = [torch.load(tmp_path / d / "model.pt", weights_only=True) for d in ("whole", "resumed")]
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key], value, rtol=0, atol=0)


def test_fgsm_refuses_methods_whose_loss_needs_unattacked_inputs(tmp_path, fmnist_root):
    config = tiny_config(tmp_path, fmnist_root, "augmix", {"train": {"adversarial": "fgsm"}})
    with pytest.raises(ProfileError, match="train.adversarial: fgsm does not combine with method 'augmix'"):
        TrainingMethod("augmix", config)


def test_mean_loss_over_2b_inputs_is_half_the_sum_of_the_halves(tmp_path, fmnist_root):
    data = load_split("fmnist", fmnist_root, train=True)
    model = fmnist_model().eval()
    losses = {}
    for p_loss in ("sum_of_halves", "mean"):
        config = tiny_config(tmp_path / p_loss, fmnist_root, "apr_p", {"apr": {"p_loss": p_loss}})
        losses[p_loss] = TrainingMethod("apr_p", config, torch.Generator().manual_seed(0)).loss(
            model, data.images[:8], data.labels[:8])
    assert losses["mean"].item() == pytest.approx(losses["sum_of_halves"].item() / 2)


def test_apply_with_probability_draws_per_image():
    x = torch.rand(200, 1, 4, 4)
    flip = lambda batch: 1 - batch  # noqa: E731
    assert torch.equal(apply_with_probability(flip, x, 0.0, torch.Generator().manual_seed(0)), x)
    assert torch.equal(apply_with_probability(flip, x, 1.0, torch.Generator().manual_seed(0)), 1 - x)
    mixed = apply_with_probability(flip, x, 0.5, torch.Generator().manual_seed(0))
    changed = (mixed != x).flatten(1).any(1)
    assert 60 < changed.sum() < 140
    assert torch.equal(mixed[changed], 1 - x[changed]) and torch.equal(mixed[~changed], x[~changed])


# ---- AutoAttack ----

@pytest.fixture(scope="module")
def weak_model(fmnist_root):
    """A linear classifier trained for seconds: weak, and clearly better than chance on clean test images."""
    torch.manual_seed(0)
    train = load_split("fmnist", fmnist_root, train=True)
    x, y = train.images[:2000].float() / 255, train.labels[:2000]
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(100):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


def test_autoattack_lowers_the_accuracy_of_a_weak_model(tmp_path, fmnist_root, weak_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tiny_profile(tmp_path, fmnist_root, autoattack={"attacks": ["apgd-ce"], "n_images": [40, 80],
                                                           "epsilon_levels": 8, "batch_size": 80, "seed": 0})
    result, per_image, summary = suite_autoattack(load_profile(str(path)).cfg, weak_model)
    first, whole = result["results"]
    assert 100 * per_image["robust__apgd-ce"].mean() == pytest.approx(whole["robust_accuracy"])
    assert 100 * per_image["clean"][:40].mean() == pytest.approx(first["clean_accuracy"])
    assert [first["n"], whole["n"]] == [40, 80] and result["attack_set"] == "reduced"
    assert whole["clean_accuracy"] > 50  # the model works on clean images...
    assert whole["robust_accuracy"] < whole["clean_accuracy"] - 20  # ...and the attack breaks many of them
    assert whole["robust_accuracy_after"] == {"apgd-ce": whole["robust_accuracy"]}
    assert "first 40 test images" in summary

    # The first 40 images' numbers are those of the first 40 of the same attack; perturbations stay within epsilon.
    test = load_split("fmnist", fmnist_root, train=False)
    clean, after, seconds = autoattack(weak_model, test.images[:40], test.labels[:40], 8 / 255, ["apgd-ce"], 40, 0)
    assert 100 * clean.double().mean().item() == pytest.approx(first["clean_accuracy"])
    assert set(seconds) == {"apgd-ce"} and after["apgd-ce"].sum() <= clean.sum()


def test_autoattack_asking_for_more_images_than_the_test_set_names_the_key(tmp_path, fmnist_root, weak_model,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tiny_profile(tmp_path, fmnist_root, autoattack={"attacks": ["apgd-ce"], "n_images": [20000],
                                                           "epsilon_levels": 8, "batch_size": 80, "seed": 0})
    with pytest.raises(ProfileError, match="autoattack.n_images asks for 20000 test images.*has 10000"):
        suite_autoattack(load_profile(str(path)).cfg, weak_model)


# ---- the table and its claims, from metrics files ----

def write_metrics(profile, numbers: dict, seeds=(0, 1, 2)) -> None:
    """clean and autoattack results of each Table 3 run: numbers = {row: (clean %, robust %)}, + seed / 10."""
    profile.cfg["seeds"] = list(seeds)
    for run in table_runs(profile, "table3_adversarial"):
        clean, robust = (v + run.seed / 10 for v in numbers[ROWS[f"{run.method}@{run.variant}"]])
        fakes.write_clean(profile, run, 101 - clean, n=4000)
        fakes.write_autoattack(profile, run, clean, robust)


def test_table_and_claims(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    profile = load_profile("default")
    profile.cfg["autoattack"] = {**profile["autoattack"], "n_images": [1000, 2000]}
    write_metrics(profile, {"fgsm": (80, 40), "fgsm_cutout": (79, 30), "fgsm_apr_p": (82, 47), "fgsm_apr_s": (60, 55),
                            "fgsm_apr_sp": (90, 60), "fgsm_duplicated": (80, 41)})
    df = table3(profile, table3_metrics(profile))
    assert list(df["method"][::2]) == ["FGSM", "FGSM w/ Cutout", "FGSM w/ APR-P", "FGSM w/ APR-S", "FGSM w/ APR-SP",
                                       "FGSM, batch duplicated (control)"]
    assert list(df["images"][:2]) == ["first 1,000", "first 2,000"]
    first = df[df["images"] == "first 1,000"]
    assert list(first["paper"]) == [43.2, 41.6, 44.1, 45.0, 45.7, None]  # Table 3 of params/paper_results.yaml
    assert list(first["clean_paper"]) == [83.3, 81.3, 85.3, 83.5, 84.3, None]
    assert df[df["images"] == "first 2,000"]["paper"].isna().all()  # not the paper's protocol: no paper number
    assert all(low < ours < high for low, ours, high in zip(first["ours_low"], first["ours"], first["ours_high"]))
    assert set(first["seeds"]) == {3}

    claims = table3_claims(profile, table3_metrics(profile))
    # APR-S's clean accuracy (60) is far below FGSM's (80): "while maintaining test accuracy" fails that claim
    assert [c["verdict"] for c in claims] == ["holds", "fails", "holds", "holds", "holds", "holds"]
    assert claims[1]["measure"] == "clean accuracy %, FGSM w/ APR-S - FGSM" and claims[1]["high"] < 0
    assert claims[0]["paper"] == "43.2 vs 41.6" and claims[0]["kind"] == "paper"
    assert claims[5]["kind"] == "beyond paper" and "FGSM, batch duplicated (control)" in claims[5]["measure"]
