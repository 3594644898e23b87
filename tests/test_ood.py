"""OOD detection: the metrics on hand-computed cases and against their definitions, the scores, every OOD loader on
small generated files in the real formats, and the profile's `ood` keys."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import skimage.data
import torch
import yaml
from PIL import Image
from torchvision.datasets import CIFAR100, SVHN

from apr_lib import ood
from apr_lib.study.config import REPO_ROOT, load_profile
from apr_lib.data import DATASETS
from apr_lib.errors import DataMissingError, ProfileError
from apr_lib.ood_metrics import (METRICS, SCORES, detection_metrics, fpr_at_tpr, ood_evaluation, ood_scores,
                                per_image_scores)
from apr_lib.spectral import amplitude_phase, band_mask
from test_data import Py2Str, cifar_batch, write_cifar

FMNIST, CIFAR10 = DATASETS["fmnist"], DATASETS["cifar10"]


# ---- metrics ----

@pytest.mark.parametrize("score_in, score_out, expected", [
    # Perfect separation.
    ([0.9, 0.8, 0.7], [0.1, 0.2],
     dict(auroc=100, aupr_in=100, aupr_out=100, fpr95_in_positive=0, fpr95_ood_positive=0)),
    # One tie between an ID and an OOD score (3 > 2 = 2 > 1 > 0): AUROC counts the tied pair one half,
    # (1 + 1 + 0.5 + 1 + 0 + 1) / 6 = 75%. AUPR-in: precision 1, 2/3, 3/4 at recall 1/3, 2/3, 1 -> 29/36.
    # AUPR-out (OOD positive, score negated): precision 1 at recall 1/2, then 2/4 at recall 1 -> 3/4.
    # FPR95, ID positive: keeping all ID needs threshold 1, where OOD 2 passes: 1/2. OOD positive: flagging
    # both OOD needs threshold 2 on the negated score, where ID 2 and 1 are flagged too: 2/3.
    ([3, 2, 1], [2, 0], dict(auroc=75, aupr_in=100 * 29 / 36, aupr_out=75, fpr95_in_positive=50,
                             fpr95_ood_positive=200 / 3)),
    # All scores tied: chance AUROC; precision = the positive class's share at the one threshold.
    ([0.5, 0.5], [0.5],
     dict(auroc=50, aupr_in=200 / 3, aupr_out=100 / 3, fpr95_in_positive=100, fpr95_ood_positive=100)),
    # Reversed: OOD scored higher than every ID image.
    ([0.1, 0.2], [0.8, 0.9], dict(auroc=0, aupr_in=100 * (1 / 3 * 0.5 + 0.5 * 0.5), fpr95_in_positive=100)),
])
def test_metrics_on_hand_computed_cases(score_in, score_out, expected):
    got = detection_metrics(np.array(score_in, float), np.array(score_out, float))
    assert set(got) == set(METRICS)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value), name


def brute_force(score_in: np.ndarray, score_out: np.ndarray) -> dict:
    """The definitions, computed directly: pairwise AUROC with ties as one half, average precision and the FPRs
    by sweeping every threshold from the highest score down."""
    pairs = score_in[:, None] - score_out[None, :]
    auroc = ((pairs > 0) + 0.5 * (pairs == 0)).mean()

    def average_precision(positive, negative):
        ap, recall_before = 0.0, 0.0
        for t in np.unique(np.concatenate([positive, negative]))[::-1]:
            tp, fp = (positive >= t).sum(), (negative >= t).sum()
            ap += (tp / len(positive) - recall_before) * tp / (tp + fp)
            recall_before = tp / len(positive)
        return ap

    def fpr95(positive, negative):
        for t in np.unique(np.concatenate([positive, negative]))[::-1]:
            if (positive >= t).mean() >= 0.95:
                return (negative >= t).mean()

    return {"auroc": 100 * auroc, "aupr_in": 100 * average_precision(score_in, score_out),
            "aupr_out": 100 * average_precision(-score_out, -score_in),
            "fpr95_in_positive": 100 * fpr95(score_in, score_out),
            "fpr95_ood_positive": 100 * fpr95(-score_out, -score_in)}


@pytest.mark.parametrize("seed", range(20))
def test_metrics_agree_with_their_definitions_on_tied_scores(seed):
    rng = np.random.default_rng(seed)
    score_in = rng.integers(0, 8, rng.integers(5, 60)).astype(float)  # few levels: many ties within and across sets
    score_out = rng.integers(-2, 6, rng.integers(5, 60)).astype(float)
    got, expected = detection_metrics(score_in, score_out), brute_force(score_in, score_out)
    for name in METRICS:
        assert got[name] == pytest.approx(expected[name]), name


def test_fpr_at_tpr_keeps_collinear_thresholds():
    # Scores 1..20 for positives and one negative at 10.5: the ROC curve's last segment is straight, and
    # scikit-learn's default drop_intermediate would drop the point where TPR first reaches 95% (FPR 1 there).
    labels = np.array([1] * 20 + [0] * 2)
    scores = np.array(list(range(20, 0, -1)) + [20.5, 0.5], float)
    # TPR reaches 19/20 = 95% at threshold 2, where only the negative scored 20.5 passes: FPR 1/2.
    assert fpr_at_tpr(labels, scores) == 0.5


def test_auroc_is_the_same_with_either_positive_class():
    rng = np.random.default_rng(0)
    score_in, score_out = rng.normal(1, 1, 200), rng.normal(0, 1, 100)
    flipped = detection_metrics(-score_out, -score_in)  # OOD as "in-distribution" with the negated score
    original = detection_metrics(score_in, score_out)
    assert flipped["auroc"] == pytest.approx(original["auroc"])
    assert flipped["aupr_in"] == pytest.approx(original["aupr_out"])
    assert flipped["fpr95_in_positive"] == pytest.approx(original["fpr95_ood_positive"])


def test_scores_and_evaluation():
    logits = torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    scores = ood_scores(logits)
    assert scores["max_logit"].tolist() == [2.0, 1.0]
    assert scores["msp"] == pytest.approx([np.exp(2) / (np.exp(2) + 2), 1 / 3])
    # Max logit and MSP rank differently: a larger logit spread vs a larger top logit.
    rng = torch.Generator().manual_seed(0)
    logits_in, logits_out = torch.randn(50, 10, generator=rng) * 3, {"a": torch.randn(40, 10, generator=rng),
                                                                      "b": torch.randn(30, 10, generator=rng) + 2}
    result = ood_evaluation(logits_in, logits_out)
    assert set(result) == {*SCORES, "mean_msp"}
    for score in SCORES:
        assert list(result[score]) == ["a", "b", "mean"]
        for metric in METRICS:
            per_set = result[score]
            assert per_set["mean"][metric] == pytest.approx((per_set["a"][metric] + per_set["b"][metric]) / 2)
    assert result["msp"]["a"]["auroc"] != result["max_logit"]["a"]["auroc"]
    assert result["mean_msp"]["a"] == pytest.approx(100 * torch.softmax(logits_out["a"], 1).max(1).values.mean().item())


def test_per_image_scores_rank_as_the_scores_and_give_the_same_auroc():
    rng = torch.Generator().manual_seed(1)
    logits_in, logits_out = torch.randn(60, 10, generator=rng) * 4, torch.randn(50, 10, generator=rng) * 2
    kept_in, kept_out = per_image_scores(logits_in), per_image_scores(logits_out)
    msp = ood_scores(logits_in)["msp"]
    np.testing.assert_allclose(kept_in["msp_log_odds"], np.log(msp / (1 - msp)), rtol=1e-9)
    # float32, as kept: the AUROC of the kept scores is the evaluation's
    result = ood_evaluation(logits_in, {"a": logits_out})
    for score, kept in (("msp", "msp_log_odds"), ("max_logit", "max_logit")):
        auroc = detection_metrics(kept_in[kept].astype(np.float32), kept_out[kept].astype(np.float32))["auroc"]
        assert auroc == pytest.approx(result[score]["a"]["auroc"])
    # a confident image whose msp is 1.0 in float32 keeps its rank
    confident = per_image_scores(torch.tensor([[40.0, 0.0], [30.0, 0.0]]))["msp_log_odds"].astype(np.float32)
    assert confident[0] > confident[1]


def test_metrics_need_both_sets():
    with pytest.raises(ValueError, match="need in-distribution and OOD scores"):
        detection_metrics(np.array([1.0]), np.array([]))


# ---- sets made here ----

@pytest.mark.parametrize("info", [FMNIST, CIFAR10], ids=["fmnist", "cifar10"])
def test_generated_sets_have_the_dataset_shape_and_their_definition(info):
    shape = (60, info.channels, info.size, info.size)
    sets = {name: ood.load_ood_set(name, info, Path("unused"), 60, seed=0)
            for name in ("gaussian", "rademacher", "blobs")}
    for s in sets.values():
        assert s.images.shape == shape and s.images.dtype == torch.uint8 and s.source
    gaussian = sets["gaussian"].images.double() / 255
    assert gaussian.mean() == pytest.approx(0.5, abs=0.01) and gaussian.std() == pytest.approx(0.25, abs=0.02)
    assert set(sets["rademacher"].images.unique().tolist()) == {0, 255}
    blobs = sets["blobs"].images
    assert ((blobs == 0) | (blobs >= 191)).all() and (blobs == 0).any() and (blobs > 0).any()  # 0.75 * 255 = 191.25
    again = ood.load_ood_set("blobs", info, Path("unused"), 60, seed=0)
    assert torch.equal(again.images, blobs)
    assert not torch.equal(ood.load_ood_set("blobs", info, Path("unused"), 60, seed=1).images, blobs)


def test_digits_are_upsampled_bright_strokes_on_black():
    digits = ood.load_ood_set("digits", FMNIST, Path("unused"), 100, seed=0)
    assert digits.images.shape == (100, 1, 28, 28) and digits.images.dtype == torch.uint8
    assert "100 of 1,797" in digits.source
    corners = digits.images[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]].float()
    assert corners.mean() < 30 and digits.images.float().amax(dim=(1, 2, 3)).mean() > 200  # black frame, white ink
    assert ood.load_ood_set("digits", CIFAR10, Path("unused"), 5, seed=0).images.shape == (5, 3, 32, 32)


def high_frequency_share(images: torch.Tensor) -> float:
    """Share of the spectrum's energy (mean removed) at radius >= a quarter of the image side."""
    x = images.double() / 255
    power = torch.fft.fft2(x - x.mean((-2, -1), keepdim=True)).abs() ** 2
    return float(power[..., band_mask(*x.shape[-2:], "high", (1, x.shape[-1] / 4))].sum() / power.sum())


def test_photo_patches_are_crops_at_the_photographs_resolution():
    patches = ood.load_ood_set("photos", CIFAR10, Path("unused"), 6, seed=0)
    assert patches.images.shape == (6, 3, 32, 32) and "astronaut" in patches.source
    photos = [np.atleast_3d(getattr(skimage.data, name)()).transpose(2, 0, 1) for name in ood.PHOTOS]
    for patch in patches.images.numpy():
        found = False
        for photo in photos:
            photo = np.broadcast_to(photo, (3, *photo.shape[1:]))
            for i, j in zip(*np.nonzero((photo == patch[:, :1, :1]).all(0))):
                found |= np.array_equal(photo[:, i:i + 32, j:j + 32], patch)
        assert found  # a crop, not a resized image
    grey = ood.load_ood_set("photos", FMNIST, Path("unused"), 200, seed=0)
    assert grey.images.shape == (200, 1, 28, 28)
    assert torch.equal(ood.load_ood_set("photos", FMNIST, Path("unused"), 200, seed=0).images, grey.images)
    # A photograph's own high frequencies, which upsampled 8x8 digits lack
    digits = ood.load_ood_set("digits", FMNIST, Path("unused"), 200, seed=0)
    assert high_frequency_share(grey.images) > 3 * high_frequency_share(digits.images)


def test_corollary2_keeps_the_amplitude_of_the_in_distribution_image():
    rng = torch.Generator().manual_seed(0)
    test_images = (64 + torch.rand(1, 1, 28, 28, generator=rng) * 128).to(torch.uint8)  # mid-grey: no clipping
    other = (64 + torch.rand(1, 1, 28, 28, generator=rng) * 128).to(torch.uint8)
    natural = ood.OODSet("digits", other, "test")
    made = ood.corollary2_set(test_images, natural, 3, seed=0, mode="per_channel")
    assert made.images.shape == (3, 1, 28, 28) and "phase of digits" in made.source
    amplitude, _ = amplitude_phase(made.images.double(), "per_channel")
    expected, _ = amplitude_phase(test_images.double(), "per_channel")
    phase_images_amplitude, _ = amplitude_phase(other.double(), "per_channel")
    # Equal up to the rounding to uint8 (about 8 per frequency, against 100,000 at frequency 0).
    assert ((amplitude - expected).norm(dim=(-2, -1)) < 0.02 * (phase_images_amplitude - expected).norm()).all()
    # The phase image's own amplitude gives back the phase image.
    itself = ood.corollary2_set(other, natural, 1, seed=0, mode="per_channel")
    assert (itself.images.int() - other.int()).abs().max() <= 1


def test_ood_sets_follow_the_profile(tmp_path):
    cfg = yaml.safe_load((REPO_ROOT / "params" / "tiny.yaml").read_text())
    cfg["ood"].update(sets=["blobs", "digits", "corollary2"], per_set=7)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg))
    test_images = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8)
    sets = ood.ood_sets(load_profile(str(path)).cfg, test_images)
    assert list(sets) == ["blobs", "digits", "corollary2"]
    assert all(s.images.shape == (7, 1, 28, 28) for s in sets.values())
    smaller = ood.ood_sets(load_profile(str(path)).cfg, test_images, n=3)
    assert all(s.images.shape == (3, 1, 28, 28) for s in smaller.values())


# ---- the paper's sets, from small files in their real formats ----

def write_svhn(folder: Path, n: int, monkeypatch) -> np.ndarray:
    """SVHN's test_32x32.mat (X: 32 x 32 x 3 x N uint8, y: N x 1, 10 for the digit 0), and torchvision made to expect
    its md5 (generated files cannot match the official one; torchvision's check and reader run unchanged)."""
    images = np.random.default_rng(0).integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    folder.mkdir(parents=True)
    url, filename, _ = SVHN.split_list["test"]
    scipy.io.savemat(folder / filename, {"X": images, "y": np.arange(1, n + 1).reshape(n, 1) % 10 + 1})
    md5 = hashlib.md5((folder / filename).read_bytes()).hexdigest()
    monkeypatch.setitem(SVHN.split_list, "test", [url, filename, md5])
    return images


def test_svhn_from_a_generated_mat_file(tmp_path, monkeypatch):
    images = write_svhn(tmp_path / "SVHN", 6, monkeypatch)
    as_cifar = ood.load_ood_set("svhn", CIFAR10, tmp_path, None, seed=0)
    assert torch.equal(as_cifar.images, torch.from_numpy(images).permute(3, 2, 0, 1))  # (N, C, H, W)
    assert "6 of 6" in as_cifar.source and "test_32x32.mat" in as_cifar.source
    as_fmnist = ood.load_ood_set("svhn", FMNIST, tmp_path, 4, seed=0)
    assert as_fmnist.images.shape == (4, 1, 28, 28) and as_fmnist.images.dtype == torch.uint8


def test_svhn_missing_or_corrupt_says_where_it_comes_from(tmp_path, monkeypatch):
    with pytest.raises(DataMissingError, match=r"SVHN/test_32x32.mat not found.*ufldl.stanford.edu.*ood.sets"):
        ood.load_ood_set("svhn", CIFAR10, tmp_path, None, seed=0)
    with monkeypatch.context() as patch:  # write the file, then restore torchvision's official md5
        write_svhn(tmp_path / "SVHN", 2, patch)
    with pytest.raises(DataMissingError, match="is not SVHN's test split"):
        ood.load_ood_set("svhn", CIFAR10, tmp_path, None, seed=0)


@pytest.mark.parametrize("name, folder, suffix", [
    ("lsun", "LSUN_resize", ".jpg"), ("imagenet", "Imagenet_resize", ".jpg"),
    ("lsun_fix", "LSUN_fix", ".png"), ("imagenet_fix", "Imagenet_fix", ".png")])
def test_image_folder_sets_from_generated_images(tmp_path, name, folder, suffix):
    # As the archives unpack: a folder of the same name inside, holding the 32x32 images.
    inner = tmp_path / folder / folder
    inner.mkdir(parents=True)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 200, 200)]
    for i, colour in enumerate(colours):
        Image.new("RGB", (32, 32), colour).save(inner / f"img_{i}{suffix}", quality=100)
    (inner / "notes.txt").write_text("not an image")
    as_cifar = ood.load_ood_set(name, CIFAR10, tmp_path, None, seed=0)
    assert as_cifar.images.shape == (4, 3, 32, 32)
    assert (as_cifar.images[:, :, 16, 16].int() - torch.tensor(colours)).abs().max() <= 3  # JPEG's rounding
    as_fmnist = ood.load_ood_set(name, FMNIST, tmp_path, 3, seed=0)
    assert as_fmnist.images.shape == (3, 1, 28, 28) and "3 of 4" in as_fmnist.source


@pytest.mark.parametrize("name, folder, origin", [("lsun", "LSUN_resize", "ODIN"),
                                                  ("imagenet_fix", "Imagenet_fix", "CSI")])
def test_missing_image_folder_names_the_folder_and_its_origin(tmp_path, name, folder, origin):
    with pytest.raises(DataMissingError, match=rf"{folder}/ not found. It comes from {origin}'s .*ood.sets"):
        ood.load_ood_set(name, CIFAR10, tmp_path, None, seed=0)
    (tmp_path / folder).mkdir()
    with pytest.raises(DataMissingError, match="holds no images"):
        ood.load_ood_set(name, CIFAR10, tmp_path, None, seed=0)


def test_cifar100_from_generated_pickles(tmp_path, monkeypatch):
    batches = {"train": cifar_batch(2, "fine_labels", 100), "test": cifar_batch(5, "fine_labels", 100)}
    write_cifar(tmp_path, CIFAR100, batches, {Py2Str(b"fine_label_names"): [Py2Str(b"c%d" % i) for i in range(100)],
                                              Py2Str(b"coarse_label_names"): []}, monkeypatch)
    got = ood.load_ood_set("cifar100", CIFAR10, tmp_path, None, seed=0)
    assert torch.equal(got.images, torch.from_numpy(batches["test"][b"data"].reshape(5, 3, 32, 32)))
    with pytest.raises(DataMissingError, match="CIFAR-100"):
        ood.load_ood_set("cifar100", CIFAR10, tmp_path / "elsewhere", None, seed=0)


# ---- the profile's keys ----

@pytest.mark.parametrize("name", ["tiny", "default", "cifar"])
def test_shipped_profiles_name_known_sets(name):
    cfg = load_profile(name)["ood"]
    assert set(cfg["sets"]) <= set(ood.SET_NAMES) and cfg["natural_set"] in ood.REAL_SETS


def test_schema_lists_the_same_set_names():
    schema = yaml.safe_load((REPO_ROOT / "params" / "profile.schema.json").read_text())
    schema = schema["properties"]["ood"]["properties"]
    assert schema["sets"]["items"]["enum"] == list(ood.SET_NAMES)
    assert schema["natural_set"]["enum"] == list(ood.REAL_SETS)


def test_unknown_set_fails_naming_the_key(tmp_path):
    cfg = yaml.safe_load((REPO_ROOT / "params" / "tiny.yaml").read_text())
    cfg["ood"]["sets"] = ["digits", "mnist"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ProfileError, match=r"key ood.sets.1: 'mnist' is not one of"):
        load_profile(str(path))
