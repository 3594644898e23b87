"""params/paper_results.yaml: every table has exactly the paper's cells, and each printed mean agrees with its rows.

These tests exist to catch transcription typos; the spot values are checked against the paper's text.
"""
import re
from statistics import mean

import pytest

from apr_lib.errors import UserError
from apr_lib.paper.paper_results import (
    load_paper_results,
    paper_fig4,
    paper_table1,
    paper_table2,
    paper_table3,
    paper_table4,
    paper_values,
)

TABLE1_METHODS = ["standard", "cutout", "mixup", "cutmix", "adv", "apr_p", "autoaugment", "augmix", "apr_s", "apr_sp"]
TABLE1_ARCHS = ["allconv", "densenet", "wrn40_2", "resnext29"]
TABLE1_DATASETS = ["cifar10_c", "cifar100_c"]
TABLE2_METHODS = ["standard", "cutout", "mixup", "apr_p", "supclr", "csi", "apr_s", "apr_sp"]
TABLE2_OOD_SETS = ["svhn", "lsun", "imagenet", "lsun_fix", "imagenet_fix", "cifar100"]
TABLE3_METHODS = ["fgsm", "fgsm_cutout", "fgsm_apr_p", "fgsm_apr_s", "fgsm_apr_sp"]
TABLE4_METHODS = ["standard", "patch_uniform", "autoaugment", "random_autoaugment", "maxblur_pool", "sin", "augmix",
                  "apr_s", "apr_p", "apr_sp", "deepaugment", "deepaugment_apr_sp"]
CORRUPTIONS = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
               "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression"]
BANDS = ["full", "low", "mid", "high"]

EXPECTED_VALUE_KEYS = {
    "table1": {dataset: {arch: TABLE1_METHODS for arch in TABLE1_ARCHS + ["mean"]} for dataset in TABLE1_DATASETS},
    "table2": {method: ["test_acc"] + TABLE2_OOD_SETS + ["mean"] for method in TABLE2_METHODS},
    "table3": {method: ["clean", "autoattack"] for method in TABLE3_METHODS},
    "table4": {method: ["test_error"] + CORRUPTIONS + ["mce"] for method in TABLE4_METHODS},
    "fig4": {band: BANDS for band in BANDS},
}
METADATA_KEYS = ["source", "caption", "metric", "unit", "higher_is_better", "setting"]

# A printed mean may differ from the mean of its printed rows by the rounding of the printed mean (0.05 for one
# decimal), plus, for Table 4, the rounding of the per-corruption errors to integers (0.5).
EPSILON = 1e-9
TABLE1_TOLERANCE = 0.05 + EPSILON
TABLE2_TOLERANCE = 0.05 + EPSILON
TABLE4_TOLERANCE = 0.5 + EPSILON

# Cells where the paper itself prints a mean that its rows do not give, even allowing for rounding:
# (entry, row..., column) -> kept as printed in the YAML. None found in Tables 1, 2 and 4 (checked against the text);
# add a cell here, with a comment "computed X vs printed Y", only after checking the paper, never to hide a typo.
KNOWN_PAPER_INCONSISTENCIES: set[tuple[str, ...]] = set()


def nested_keys(tree):
    """The tree's keys with the leaves' keys as lists, in file order, for comparison with EXPECTED_VALUE_KEYS."""
    if all(not isinstance(child, dict) for child in tree.values()):
        return list(tree)
    return {key: nested_keys(child) for key, child in tree.items()}


def leaves(tree):
    for child in tree.values():
        yield from leaves(child) if isinstance(child, dict) else [child]


def test_entries_are_exactly_the_papers_tables_and_figure():
    assert list(load_paper_results()) == ["table1", "table2", "table3", "table4", "fig4"]


@pytest.mark.parametrize("entry", list(EXPECTED_VALUE_KEYS))
def test_entry_metadata(entry):
    results = load_paper_results()[entry]
    assert list(results) == METADATA_KEYS + ["values"]
    assert results["source"] == {"fig4": "Figure 4"}.get(entry, f"Table {entry[-1]}")
    assert results["unit"] == "%"
    assert isinstance(results["higher_is_better"], bool)
    for key in ["caption", "metric", "setting"]:
        assert isinstance(results[key], str) and results[key].strip() and "\n" not in results[key]


@pytest.mark.parametrize("entry", list(EXPECTED_VALUE_KEYS))
def test_entry_has_exactly_the_papers_cells(entry):
    assert nested_keys(paper_values(entry)) == EXPECTED_VALUE_KEYS[entry]


@pytest.mark.parametrize("entry", list(EXPECTED_VALUE_KEYS))
def test_values_are_plausible_percentages(entry):
    for value in leaves(paper_values(entry)):
        assert type(value) in (int, float) and 0 < value <= 100, value


def mean_mismatches():
    """{cell: (computed mean of the printed rows, printed mean)} for every printed mean off by more than rounding."""
    mismatches = {}
    for dataset in TABLE1_DATASETS:
        table = paper_table1(dataset)
        for method in TABLE1_METHODS:
            computed = mean(table[arch][method] for arch in TABLE1_ARCHS)
            if abs(computed - table["mean"][method]) > TABLE1_TOLERANCE:
                mismatches[("table1", dataset, "mean", method)] = (computed, table["mean"][method])
    for method, row in paper_table2().items():
        computed = mean(row[ood_set] for ood_set in TABLE2_OOD_SETS)
        if abs(computed - row["mean"]) > TABLE2_TOLERANCE:
            mismatches[("table2", method, "mean")] = (computed, row["mean"])
    for method, row in paper_table4().items():
        computed = mean(row[corruption] for corruption in CORRUPTIONS)
        if abs(computed - row["mce"]) > TABLE4_TOLERANCE:
            mismatches[("table4", method, "mce")] = (computed, row["mce"])
    return mismatches


def test_printed_means_agree_with_their_rows():
    mismatches = mean_mismatches()
    assert set(mismatches) == KNOWN_PAPER_INCONSISTENCIES, mismatches


def test_spot_values_from_the_paper_text():
    assert paper_table1("cifar100_c")["wrn40_2"]["apr_sp"] == 32.9
    assert paper_table1("cifar10_c")["resnext29"]["adv"] == 27
    assert paper_table1("cifar10_c")["mean"]["autoaugment"] == 26
    assert paper_table1("cifar10_c")["allconv"]["augmix"] == 15.0
    assert paper_table2()["standard"]["test_acc"] == 93.0
    assert paper_table2()["apr_sp"]["lsun"] == 97.9
    assert paper_table2()["csi"]["mean"] == 94.0
    assert paper_table3()["fgsm_apr_sp"] == {"clean": 84.3, "autoattack": 45.7}
    assert paper_table3()["fgsm"] == {"clean": 83.3, "autoattack": 43.2}
    assert paper_table4()["standard"]["mce"] == 80.6
    assert paper_table4()["apr_sp"]["fog"] == 49
    assert paper_table4()["deepaugment_apr_sp"]["test_error"] == 26.4
    assert paper_fig4()["high"]["high"] == 46.5
    assert paper_fig4()["full"]["full"] == 93.0
    assert paper_fig4()["mid"]["low"] == 52.8


def test_accessors_return_what_the_file_holds():
    results = load_paper_results()
    for dataset in TABLE1_DATASETS:
        assert paper_table1(dataset) == results["table1"]["values"][dataset]
    assert paper_table2() == results["table2"]["values"]
    assert paper_table3() == results["table3"]["values"]
    assert paper_table4() == results["table4"]["values"]
    assert paper_fig4() == results["fig4"]["values"]


def test_unknown_names_and_missing_file_raise_user_errors(tmp_path):
    with pytest.raises(UserError, match="imagenet_c"):
        paper_table1("imagenet_c")
    with pytest.raises(UserError, match="table9"):
        paper_values("table9")
    missing = tmp_path / "paper_results.yaml"
    with pytest.raises(UserError, match=re.escape(str(missing))):
        load_paper_results(missing)
