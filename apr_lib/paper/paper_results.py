"""The paper's own numbers, read from `params/paper_results.yaml` (the one place they live).

Each entry of the file (`table1` ... `table4`, `fig4`) holds `source`, `caption`, `metric`, `unit`,
`higher_is_better`, `setting` and `values`; the accessors below return the `values` part.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from apr_lib.errors import UserError
from apr_lib.study.config import REPO_ROOT

PAPER_RESULTS_PATH = REPO_ROOT / "params" / "paper_results.yaml"


def load_paper_results(path: str | Path | None = None) -> dict:
    """Return the whole file: {entry name: {source, caption, metric, unit, higher_is_better, setting, values}}."""
    path = Path(path) if path is not None else PAPER_RESULTS_PATH
    if not path.is_file():
        raise UserError(f"paper results file not found: {path} (it ships with the repository as params/paper_results.yaml)")
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def paper_values(entry: str) -> dict:
    """Return the `values` of one entry (`table1`, `table2`, `table3`, `table4` or `fig4`)."""
    results = load_paper_results()
    if entry not in results:
        raise UserError(f"no entry {entry!r} in {PAPER_RESULTS_PATH}; known: {', '.join(results)}")
    return results[entry]["values"]


def paper_table1(dataset: str) -> dict:
    """Table 1, mean corruption error %: {arch: {method: value}} for `cifar10_c` or `cifar100_c`; arch `mean` is the printed mean row."""
    tables = paper_values("table1")
    if dataset not in tables:
        raise UserError(f"Table 1 has no dataset {dataset!r}; known: {', '.join(tables)}")
    return tables[dataset]


def paper_table2() -> dict:
    """Table 2, CIFAR-10 vs OOD sets: {method: {`test_acc` or OOD set or `mean`: value %}} (accuracy and AUROC)."""
    return paper_values("table2")


def paper_table3() -> dict:
    """Table 3, FGSM adversarial training: {method: {`clean` or `autoattack`: accuracy %}}."""
    return paper_values("table3")


def paper_table4() -> dict:
    """Table 4, ImageNet-C: {method: {`test_error`, each of the 15 corruptions (CE_c), `mce`: value %}}."""
    return paper_values("table4")


def paper_fig4() -> dict:
    """Figure 4, test accuracy %: {amplitude band: {phase band: value}}, bands `full`, `low`, `mid`, `high`."""
    return paper_values("fig4")
