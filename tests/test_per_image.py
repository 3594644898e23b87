"""Per-image results beside the metrics files: a round trip keeps every value, booleans are bit-packed, and
evaluation runs the model in float32 (no autocast: bf16 would coarsen the kept scores)."""
import numpy as np
import pytest
import torch

from apr_lib import evaluate, per_image


def test_round_trip_keeps_booleans_scores_and_names(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"correct": rng.random((3, 5, 101)) < 0.7, "in__max_logit": rng.normal(size=1000),
              "corruptions": np.array(["fog", "snow", "frost"]), "severities": np.array([1, 3, 5])}
    path = tmp_path / "m" / "corruption.npz"
    per_image.save(path, arrays)
    back = per_image.load(path)
    assert set(back) == set(arrays)
    np.testing.assert_array_equal(back["correct"], arrays["correct"])
    assert back["in__max_logit"].dtype == np.float32
    np.testing.assert_allclose(back["in__max_logit"], arrays["in__max_logit"], rtol=1e-6)
    assert list(back["corruptions"]) == ["fog", "snow", "frost"] and list(back["severities"]) == [1, 3, 5]
    assert not list(path.parent.glob(".*"))  # written atomically: no temporary file left


def test_booleans_take_a_bit_each(tmp_path):
    path = tmp_path / "clean.npz"
    per_image.save(path, {"correct": np.random.default_rng(1).random(80_000) < 0.5})
    assert path.stat().st_size < 80_000 / 8 * 1.2


class AutocastSpy(torch.nn.Module):
    """A classifier that records whether it ran under autocast."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.autocast_seen = []

    def forward(self, x):
        self.autocast_seen.append(torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda"))
        return torch.stack([x.mean((1, 2, 3)), -x.mean((1, 2, 3))], 1) * self.weight


def test_evaluation_never_enters_autocast(monkeypatch):
    # The old path wrapped every batch in torch.autocast (bf16 on CUDA, disabled elsewhere): any autocast context
    # on the evaluation path fails here, on a CPU as on a GPU.
    entered = []

    class NoAutocast:
        def __init__(self, *args, **kwargs):
            entered.append((args, kwargs))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(torch, "autocast", NoAutocast)
    model = AutocastSpy()
    images, labels = torch.randint(0, 256, (7, 1, 4, 4), dtype=torch.uint8), torch.randint(0, 2, (7,))
    result, kept = evaluate.evaluate_clean(model, images, labels, batch_size=3)
    assert entered == [] and model.autocast_seen and not any(model.autocast_seen)
    assert kept["correct"].shape == (7,) and 100 * (1 - kept["correct"].mean()) == pytest.approx(result["error"])
    assert evaluate.predict(model, images, 3).dtype == torch.float32
