"""Figure 9: two heads with Eq. 7's loss on APR-P pairs, a combined prediction every suite can use, and the table."""
import json

import pytest
import torch
import torch.nn.functional as F

from apr_lib import load_run
from apr_lib.paper.fig9_amp_phase_labels import KEY, claims, measure
from apr_lib.study.config import RunSpec, load_profile, run_config, table_runs
from apr_lib.errors import ProfileError
from apr_lib.methods import AmplitudePhasePairs, TrainingMethod, amplitude_phase_loss
from apr_lib.models import AmplitudePhaseHeads, build_run_model
from apr_lib.names import METHODS
from apr_lib.spectral import swap_amplitude
import fakes
from conftest import tiny_profile

torch.set_num_threads(1)
CONFIG = {"dataset": "fmnist", "arch": "resnet18_small", "amp_phase_labels": {"lambda": 0.25}}


def test_prediction_is_the_lambda_weighted_sum_of_the_heads():
    torch.manual_seed(0)
    model = build_run_model(CONFIG).eval()
    assert isinstance(model, AmplitudePhaseHeads)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        logits = model.model(x)  # the architecture's 2K outputs: phase head, then amplitude head
        assert logits.shape == (5, 20)
        phase, amplitude = model.heads(x)
        torch.testing.assert_close(phase, logits[:, :10])
        torch.testing.assert_close(amplitude, logits[:, 10:])
        torch.testing.assert_close(model(x), 0.25 * phase + 0.75 * amplitude)


def test_pairs_take_the_partners_amplitude_and_carry_both_labels():
    x = torch.rand(8, 1, 28, 28)
    labels = torch.arange(8)  # distinct labels reveal the partner of each image
    out, targets = AmplitudePhasePairs("channel3d", torch.Generator().manual_seed(3))(x, labels)
    assert targets.shape == (8, 2) and torch.equal(targets[:, 0], labels)
    partner = targets[:, 1]
    assert sorted(partner.tolist()) == list(range(8)) and not torch.equal(partner, labels)
    torch.testing.assert_close(out, swap_amplitude(x, x[partner], "channel3d"))


def test_eq7_weighs_the_two_cross_entropies():
    torch.manual_seed(0)
    model = build_run_model(CONFIG)
    x, targets = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6, 2))
    phase, amplitude = model.heads(x)
    expected = 0.25 * F.cross_entropy(phase, targets[:, 0]) + 0.75 * F.cross_entropy(amplitude, targets[:, 1])
    torch.testing.assert_close(amplitude_phase_loss(model, x, targets), expected)
    with pytest.raises(TypeError, match="two heads"):
        amplitude_phase_loss(build_run_model({"dataset": "fmnist", "arch": "small_cnn"}), x, targets)


def test_training_method_uses_pairs_and_eq7_and_refuses_other_methods():
    config = {**CONFIG, "train": {"crop_padding": 2, "flip": True, "crop_fill": 0}, "apr": {"fft_mode": "channel3d"}}
    method = TrainingMethod("apr_p", config, torch.Generator().manual_seed(0))
    images, labels = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (16,))
    x, targets = method.augment(images, labels)
    assert x.shape == (16, 1, 28, 28) and targets.shape == (16, 2)  # every image a pair, no clean copy
    model = build_run_model(CONFIG)
    method.loss(model, images, labels).backward()
    head = model.model.net.classifier.weight.grad
    assert head[:10].abs().sum() > 0 and head[10:].abs().sum() > 0  # both heads learn at lambda 0.25
    with pytest.raises(ProfileError, match="method 'apr_p', not 'standard'"):
        TrainingMethod("standard", config)
    assert list(METHODS)[-1] == "apr_sp" and len(METHODS) == 10  # an option, not an eleventh method


def test_load_run_rebuilds_both_heads_and_lambda(tmp_path):
    model = build_run_model(CONFIG).eval()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    loaded, _ = load_run(tmp_path, device="cpu")
    assert loaded.phase_weight == 0.25
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


@pytest.fixture
def fig9_profile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lambdas = [0.0, 0.5, 1.0]
    path = tiny_profile(tmp_path, tmp_path / "data", variants={f"lambda-{l:g}": {"amp_phase_labels": {"lambda": l}}
                                                               for l in lambdas},
                        tables={KEY: {"archs": ["small_cnn"], "methods": ["apr_p"],
                                        "variants": [f"lambda-{l:g}" for l in lambdas]}})
    return load_profile(str(path))


def write_metrics(profile, clean: list[float], corrupted: list[float], shift: list[float], seeds=(0, 1, 2)) -> None:
    """Results of each lambda's runs (in order): clean and -C accuracy %, OOD scores N(shift, 1) vs N(0, 1)."""
    profile.cfg["seeds"] = list(seeds)
    variants = list(dict.fromkeys(r.variant for r in table_runs(profile, KEY)))
    for run in table_runs(profile, KEY):
        k = variants.index(run.variant)
        fakes.write_clean(profile, run, 100 - clean[k] - run.seed / 4)
        fakes.write_corruption(profile, run, 100 - corrupted[k] - run.seed / 4)
        fakes.write_ood(profile, run, shift[k] + run.seed / 20)


def test_table_and_claims_follow_the_metrics(fig9_profile):
    write_metrics(fig9_profile, clean=[80, 82, 84], corrupted=[50, 60, 70], shift=[1.0, 1.5, 2.0])
    df = measure(fig9_profile)
    assert df["lambda"].tolist() == [0.0, 0.5, 1.0]
    assert df["clean_accuracy"].tolist() == pytest.approx([80.25, 82.25, 84.25], abs=0.1)
    assert df["ood_auroc_msp"].is_monotonic_increasing
    assert [c["verdict"] for c in claims(fig9_profile, df)] == ["holds", "holds", "holds", "holds"]
    write_metrics(fig9_profile, clean=[84, 82, 80], corrupted=[70, 71, 72], shift=[2.0, 1.5, 1.0])
    assert [c["verdict"] for c in claims(fig9_profile, measure(fig9_profile))] == ["fails", "holds", "fails", "holds"]


def test_shipped_profiles_train_apr_p_with_a_lambda_per_run():
    for name in ("tiny", "default", "cifar"):
        profile = load_profile(name)
        runs = table_runs(profile, KEY)
        assert {r.method for r in runs} == {"apr_p"}
        assert all("amp_phase_labels" in run_config(profile, r) for r in runs)
    lambdas = [run_config(load_profile("default"), r)["amp_phase_labels"]["lambda"]
               for r in table_runs(load_profile("default"), KEY)]
    assert lambdas[0] == 0.0 and lambdas[-1] == 1.0 and lambdas == sorted(lambdas)
    assert RunSpec.parse("fmnist/resnet18_small/apr_p@lambda-0.25/seed0").variant == "lambda-0.25"
