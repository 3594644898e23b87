"""Table 2 from metrics files: numbers taken from the files, the paper's from params/paper_results.yaml, the claims."""
import pytest

from apr_lib.study.config import load_profile, metrics_file, table_runs
from apr_lib.errors import UserError
from apr_lib.files import write_json
from apr_lib.ood_metrics import METRICS, SCORES
from apr_lib.paper.paper_results import paper_table2
from apr_lib.paper.table2_ood import claims as table2_claims, measure as table2_metrics, table2, table2_caption, table2_detail
import fakes
from conftest import tiny_profile

METHODS = ["standard", "cutout", "mixup", "apr_p", "apr_s", "apr_sp"]


def write_runs(profile, auroc: dict[str, tuple[float, float]], accuracy: dict[str, float]) -> None:
    """clean.json and ood.json of each run: every metric (msp, max_logit) of the profile's first OOD set, the other
    sets 10 points lower, "mean" 5 points lower (whatever the file says is what the table shows)."""
    first, *others = profile["ood"]["sets"]
    for run in table_runs(profile, "table2_ood"):
        result = {}
        for score, value in zip(SCORES, auroc[run.method]):
            result[score] = {first: {m: value for m in METRICS},
                             **{o: {m: value - 10 for m in METRICS} for o in others},
                             "mean": {m: value - 5 for m in METRICS}}
        write_json(metrics_file(profile, run, "ood"), {
            "run": run.name, "suite": "ood", **result, "in_distribution": {"dataset": "fmnist", "n": 500},
            "sets": {name: {"n": 5, "source": f"{name}, made in a test"} for name in profile["ood"]["sets"]}})
        write_json(metrics_file(profile, run, "clean"), {"run": run.name, "error": 100 - accuracy[run.method]})


@pytest.fixture
def profile(tmp_path, monkeypatch):
    tiny_profile(tmp_path, tmp_path / "data", tables={"table2_ood": {"archs": ["small_cnn"], "methods": METHODS}},
                 ood={"sets": ["blobs", "digits"]})
    monkeypatch.chdir(tmp_path)
    return load_profile("tiny")


def test_table_holds_the_files_numbers_beside_the_papers(profile):
    auroc = {m: (60 + i, 80 - i) for i, m in enumerate(METHODS)}
    write_files(profile, {m: 0.1 * i for i, m in enumerate(METHODS)}, {}, seeds=(0,))  # per image: for the intervals
    write_runs(profile, auroc, {m: 90.0 for m in METHODS})
    per_run = table2_metrics(profile)
    table = table2(profile, per_run)
    paper = paper_table2()
    assert list(table["method"]) == ["CE", "CE w/ Cutout", "CE w/ Mixup", "CE w/ APR-P", "SupCLR", "CSI",
                                     "CE w/ APR-S", "CE w/ APR-SP"]
    assert list(table.columns) == ["arch", "method", "test_acc", "test_acc_paper", "blobs", "digits", "ours", "ours_low",
                                   "ours_high", "seeds", "paper", "mean_max_logit", "note"]  # sets in the profile's order
    measured = table[table["note"] == ""]
    assert list(measured["blobs"]) == [auroc[m][0] for m in METHODS]
    assert list(measured["digits"]) == [auroc[m][0] - 10 for m in METHODS]
    assert list(measured["ours"]) == [auroc[m][0] - 5 for m in METHODS]
    assert list(measured["mean_max_logit"]) == [auroc[m][1] - 5 for m in METHODS]
    assert list(measured["test_acc"]) == [90.0] * 6
    assert list(table["paper"]) == [paper[m]["mean"] for m in ["standard", "cutout", "mixup", "apr_p", "supclr", "csi",
                                                               "apr_s", "apr_sp"]]
    supclr = table[table["method"] == "SupCLR"].iloc[0]
    assert supclr["ours"] is None and supclr["test_acc"] is None and "not reproduced" in supclr["note"]
    assert "blobs, made in a test" in table2_caption(profile) and "Fashion-MNIST" in table2_caption(profile)
    detail = table2_detail(per_run)
    assert len(detail) == 2 * 6 * 3 and set(detail.columns) >= set(METRICS)


def test_table_picks_the_profiles_score(profile, tmp_path):
    tiny_profile(tmp_path, tmp_path / "data", tables={"table2_ood": {"archs": ["small_cnn"], "methods": METHODS}},
                 ood={"score": "max_logit", "sets": ["blobs", "digits"]})
    profile = load_profile("tiny")
    write_files(profile, {m: 1.0 for m in METHODS}, {}, seeds=(0,))
    write_runs(profile, {m: (60.0, 70.0) for m in METHODS}, {m: 90.0 for m in METHODS})
    table = table2(profile, table2_metrics(profile))
    assert "mean_msp" in table.columns and table["ours"].iloc[0] == 65.0 and table["mean_msp"].iloc[0] == 55.0


def test_paper_sets_get_the_papers_column(profile, tmp_path):
    tiny_profile(tmp_path, tmp_path / "data", tables={"table2_ood": {"archs": ["small_cnn"], "methods": METHODS}},
                 ood={"sets": ["svhn", "digits"]})
    profile = load_profile("tiny")
    write_files(profile, {m: 1.0 for m in METHODS}, {}, seeds=(0,))
    write_runs(profile, {m: (60.0, 70.0) for m in METHODS}, {m: 90.0 for m in METHODS})
    table = table2(profile, table2_metrics(profile))
    assert "digits_paper" not in table.columns
    assert list(table["svhn_paper"]) == [paper_table2()[m]["svhn"] for m in
                                         ["standard", "cutout", "mixup", "apr_p", "supclr", "csi", "apr_s", "apr_sp"]]


def write_files(profile, shift: dict[str, float], accuracy: dict[str, float], seeds=(0, 1, 2)) -> None:
    """Per-image results of each run: test images scored N(shift, 1) against N(0, 1) OOD images (a higher shift, a
    higher AUROC), `accuracy` % on clean images."""
    profile.cfg["seeds"] = list(seeds)
    for run in table_runs(profile, "table2_ood"):
        fakes.write_ood(profile, run, shift[run.method])
        fakes.write_clean(profile, run, 100 - accuracy.get(run.method, 90.0))


@pytest.mark.parametrize("shift, accuracy, verdicts", [
    # APR-P far above Cutout with the accuracy kept; every APR above CE; APR-SP best.
    ({"standard": 0.2, "cutout": 0.4, "mixup": 0.0, "apr_p": 1.5, "apr_s": 1.0, "apr_sp": 2.5}, {"apr_p": 90, "cutout": 90},
     ["holds", "not run", "holds", "holds"]),
    # APR-P above Cutout but 8 points less accurate; APR-S below CE; APR-P best.
    ({"standard": 1.0, "cutout": 0.4, "mixup": 0.0, "apr_p": 2.5, "apr_s": 0.0, "apr_sp": 1.5}, {"apr_p": 82, "cutout": 90},
     ["fails", "not run", "fails", "fails"]),
])
def test_claims_compare_with_intervals(profile, shift, accuracy, verdicts):
    write_files(profile, shift, accuracy)
    claims = table2_claims(profile, table2_metrics(profile))
    assert [c["verdict"] for c in claims] == verdicts
    paper = paper_table2()
    assert "CSI" in claims[1]["note"] and claims[1]["paper"] == f"{paper['apr_sp']['mean']} vs {paper['csi']['mean']}"
    assert "test accuracy %" in claims[0]["note"] and claims[0]["seeds"] == "3 vs 3"


def test_claims_without_a_method_are_not_run(tmp_path, monkeypatch):
    tiny_profile(tmp_path, tmp_path / "data",
                 tables={"table2_ood": {"archs": ["small_cnn"], "methods": ["standard", "apr_sp"]}})
    monkeypatch.chdir(tmp_path)
    profile = load_profile("tiny")
    write_files(profile, {"standard": 0.0, "apr_sp": 2.0}, {})
    claims = table2_claims(profile, table2_metrics(profile))
    assert [c["verdict"] for c in claims] == ["not run", "not run", "not run", "holds"]
    assert "not in this profile's tables.table2_ood.methods" in claims[0]["note"]


def test_metrics_of_other_sets_than_the_profiles_are_refused(profile, tmp_path):
    write_runs(profile, {m: (60.0, 70.0) for m in METHODS}, {m: 90.0 for m in METHODS})
    tiny_profile(tmp_path, tmp_path / "data", tables={"table2_ood": {"archs": ["small_cnn"], "methods": METHODS}},
                 ood={"sets": ["blobs", "gaussian"]})
    with pytest.raises(UserError, match=r"measured the OOD sets blobs, digits, but the profile's ood.sets are "
                                        r"blobs, gaussian"):
        table2_metrics(load_profile("tiny"))
