"""The ledger of claims (tables/claims.csv): every "holds" or "fails" rests on an interval that excludes 0 and each
claim text has one verdict, checked on synthetic ledgers, on the verdict rule itself, and on the committed reference
run's ledger."""
import io
import subprocess
import tarfile

import numpy as np
import pandas as pd
import pytest

from apr_lib.paper.index import count_sentence, counted, ledger_problems
from apr_lib.paper.report import CLAIM_COLUMNS, Condition, claim
from apr_lib.study.config import REPO_ROOT
from apr_lib.uncertainty import Interval


def condition(low: float, high: float, side: int = +1, seeds=(3, 3), not_worse: bool = False) -> Condition:
    seed_variation = "included" if min(seeds) > 1 else "unknown"
    return Condition("measure", "ours", "paper", Interval((low + high) / 2, low, high, seeds, seed_variation), side,
                     not_worse)


@pytest.mark.parametrize("conditions, need, verdict", [
    ([condition(0.5, 2.0)], None, "holds"),
    ([condition(-2.0, -0.5)], None, "fails"),
    ([condition(-0.5, 2.0)], None, "inconclusive"),
    ([condition(-2.0, -0.5, side=-1)], None, "holds"),
    ([condition(0.5, 2.0, seeds=(1, 3))], None, "inconclusive"),        # one seed: training variation unknown
    ([condition(0.5, 2.0), condition(-0.5, 1.0)], None, "inconclusive"),  # every condition must hold
    ([condition(0.5, 2.0), condition(-3.0, -1.0)], None, "fails"),       # any decisive failure fails the claim
    ([condition(0.5, 2.0), condition(-3.0, -1.0)], 1, "holds"),          # "1 of 2"
    ([condition(0.5, 2.0), condition(-1.0, 0.5, not_worse=True)], None, "holds"),   # "while maintaining": not worse
    ([condition(0.5, 2.0), condition(-3.0, -1.0, not_worse=True)], None, "fails"),  # ... but decisively worse
    ([condition(-0.5, 0.5, side=0)], None, "inconclusive"),              # "no difference" can never hold
    ([condition(1.0, 2.0, side=0)], None, "fails"),
])
def test_verdicts_combine_the_conditions(conditions, need, verdict):
    row = claim("a claim", "source", "paper", conditions, need=need)
    assert row["verdict"] == verdict
    if verdict in ("holds", "fails"):
        assert not row["low"] <= 0 <= row["high"]  # the numbers shown are the deciding condition's


def test_rounding_never_turns_an_interval_that_touches_zero_into_a_verdict():
    touching = condition(0.004, 1.0)  # printed with 2 decimals its low bound is 0.00
    assert touching.shown.low == 0 and touching.verdict == "inconclusive"


def ledger(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    """(claim, verdict, low, high) rows, the other columns filled in."""
    return pd.DataFrame([{**dict.fromkeys(CLAIM_COLUMNS, ""), "section": "s", "kind": "paper", "counted": "yes",
                          "claim": c, "verdict": v, "low": low, "high": high} for c, v, low, high in rows])


def test_ledger_rules_on_synthetic_ledgers():
    good = ledger([("a", "holds", 0.1, 2.0), ("b", "fails", -3.0, -0.2), ("c", "inconclusive", -1.0, 1.0),
                   ("d", "not run", np.nan, np.nan)])
    assert ledger_problems(good) == []
    assert ledger_problems(ledger([("a", "holds", -0.1, 2.0)])) == [
        "s: 'a' holds on the interval [-0.1, 2.0], which does not exclude 0"]
    assert len(ledger_problems(ledger([("a", "fails", np.nan, np.nan)]))) == 1
    assert ledger_problems(ledger([("a", "holds", 0.1, 2.0), ("a", "fails", -2.0, -0.1)])) == [
        "'a' has 2 verdicts: one claim text, one verdict"]
    assert len(ledger_problems(ledger([("a", "holds?", 0.1, 2.0)]))) == 1


def test_counts_take_the_papers_claims_once():
    df = ledger([("a", "holds", 0.1, 2.0), ("b", "inconclusive", -1.0, 1.0), ("c", "holds", 1.0, 2.0),
                 ("d", "fails", -2.0, -1.0)])
    df.loc[2, "kind"] = "beyond paper"
    df.loc[3, "counted"] = "no: counted in s: a"
    assert count_sentence(counted(df)) == "2 claims: 1 holds, 1 is inconclusive"


def committed_ledger() -> pd.DataFrame | None:
    """outputs/default/tables/claims.csv as committed at HEAD (not the working tree's), or None."""
    archive = subprocess.run(["git", "archive", "HEAD", "outputs/default/tables/claims.csv"], cwd=REPO_ROOT,
                             capture_output=True)
    if archive.returncode:
        return None
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        return pd.read_csv(tar.extractfile("outputs/default/tables/claims.csv"), keep_default_na=False)


def test_the_committed_reference_ledger_keeps_the_rules():
    df = committed_ledger()
    if df is None:
        pytest.skip("no committed reference ledger (not a git checkout, or outputs/default/ not committed)")
    if "low" not in df.columns:
        pytest.skip("the committed reference run predates the intervals: the next reference run writes them")
    assert ledger_problems(df) == []
