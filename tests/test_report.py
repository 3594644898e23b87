"""What every section shares for its outputs: numbers rounded once, tables whose csv, md and tex agree, figures
readable on a slide, captions that state each section's own budget, and the index page's layout."""
import math
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml

from apr_lib.paper.index import anchor, count_sentence, headline_claim, write_index
from apr_lib.paper.manifest import headline
from apr_lib.paper.report import (Table, check_readable, describe_runs, describe_untrained, number, rounded,
                                  write_tables)
from apr_lib.study.config import REPO_ROOT, load_profile, table_runs, with_variant
from apr_lib.study.sections import section
from apr_lib.study.targets import claims_table
from test_manifest import write_outputs


def test_numbers_are_rounded_half_up_as_the_decimals_they_stand_for():
    assert rounded(83.14999999999999, 1) == 83.2 == rounded(83.15, 1)  # 100 - 16.85 and 83.15 alike
    assert rounded(0.125, 2) == 0.13 and rounded(-0.05, 1) == -0.1
    assert rounded(3, 1) == 3 and rounded("text", 1) == "text" and math.isnan(rounded(float("nan"), 1))
    assert number(83.14999999999999) == "83.2" and number(None) == "" and number(2.0, 2) == "2.00"


def test_a_table_is_written_rounded_once_alike_in_csv_md_and_tex(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    profile = load_profile(str(REPO_ROOT / "params" / "tiny.yaml"))
    frame = pd.DataFrame({"method": ["CE", "SupCLR"], "ours": [83.14999999999999, np.nan], "paper": [88.1, 92.0],
                          "n": [1000, 1000]})
    write_tables(profile, {"t": Table(frame, "A caption.")})
    base = tmp_path / "outputs/tiny/tables"
    csv, md, tex = ((base / f"t.{ext}").read_text() for ext in ("csv", "md", "tex"))
    assert csv.splitlines()[1:] == ["CE,83.2,88.1,1000", "SupCLR,,92.0,1000"]  # blank, not nan; no float noise
    assert "| CE       |   83.2 |" in md and "nan" not in md and md.startswith("A caption.")
    assert "CE & 83.2 & 88.1 & 1000" in tex and "SupCLR & -- & 92.0" in tex


def test_figures_must_be_readable_on_a_slide():
    fig, (ax, off) = plt.subplots(1, 2)
    ax.set_title("title", fontsize=9)
    off.imshow(np.zeros((2, 2)))
    off.axis("off")  # its tick labels are not drawn: not checked
    check_readable(fig, "ok")
    ax.set_xlabel("too small", fontsize=7)
    with pytest.raises(ValueError, match=r"figure small: text smaller than 9 pt: \[\(7.0, 'too small'\)\]"):
        check_readable(fig, "small")
    plt.close(fig)


def test_captions_state_each_sections_own_budget():
    profile = load_profile("default")
    table3 = describe_runs(profile, table_runs(profile, "table3_adversarial"), lambda run: run.variant)
    epochs = {v: with_variant(profile.cfg, v)["train"]["epochs"] for v in ("fgsm", "fgsm_apr_sp")}
    assert epochs["fgsm"] != epochs["fgsm_apr_sp"]  # the rows' budgets differ, so the caption must name each
    images = f"{with_variant(profile.cfg, 'fgsm')['train']['train_subset']:,}"
    assert re.search(rf"fgsm\b[^;]*: {epochs['fgsm']} epochs on {images} training images.*fgsm_apr_sp: "
                     rf"{epochs['fgsm_apr_sp']} epochs on {images}", table3)
    band = with_variant(profile.cfg, "amp-low_phase-high")["train"]
    assert f"small_cnn trained {band['epochs']} epochs on {band['train_subset']:,} training images" in describe_runs(
        profile, table_runs(profile, "fig4_amp_phase_grid"))
    assert "4 epochs" not in describe_runs(profile, table_runs(profile, "fig9_amp_phase_labels"))
    assert "nothing is trained for this section: test images only" in describe_untrained(profile, "test images only")


def test_verdicts_are_counted_and_the_summary_shows_a_claim_of_the_paper():
    verdicts = pd.DataFrame({"verdict": ["fails", "holds", "inconclusive", "holds", "not run"]})
    assert count_sentence(verdicts) == "5 claims: 2 hold, 1 fails, 1 is inconclusive, 1 was not run"
    claims = pd.DataFrame({"kind": ["beyond paper", "paper"], "measure": ["x", "y"]})
    assert headline_claim(claims)["measure"] == "y"  # the first of the paper's own claims
    assert headline_claim(claims.iloc[:1])["measure"] == "x"  # a section without one: its first


def test_the_anchor_is_the_one_github_gives_the_heading():
    assert anchor("Figures 2 and 3 (section 1): Predictions after swapping amplitude spectra") == \
        "figures-2-and-3-section-1-predictions-after-swapping-amplitude-spectra"
    assert anchor("Beyond the paper (the paper vs its released code): The paper's text vs its released code") == \
        "beyond-the-paper-the-paper-vs-its-released-code-the-papers-text-vs-its-released-code"


def test_the_index_opens_with_a_summary_and_contents_and_links_long_tables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = yaml.safe_load((REPO_ROOT / "params" / "tiny.yaml").read_text())
    cfg["sections"] = ["fig6_templates", "table2_ood"]
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    profile = load_profile("params/tiny.yaml")
    out = profile.outputs
    write_tables(profile, {"table2_ood": Table(pd.DataFrame({"method": ["CE"], "ours": [70.0]}), "Table 2: short."),
                           "table2_ood_metrics": Table(pd.DataFrame({"x": range(72)}), "Every metric: long.")})
    (out / "figures").mkdir()
    (out / "figures" / "fig6_templates.md").write_text("Figure 6, honestly captioned.\n")
    claims = pd.DataFrame({"section": ["fig6_templates", "table2_ood", "table2_ood"], "claim": ["c1", "c2", "c3"],
                           "source": "s", "measure": ["largest |x - y|", "AUROC", "AUROC"], "ours": ["1e-11", "70.0", ""],
                           "paper": ["identity", "88.1", "94.7"], "verdict": ["holds", "fails", "not run"], "note": "",
                           "kind": ["identity", "paper", "paper"], "counted": "yes"})
    claims_table(profile)[0].parent.mkdir(parents=True, exist_ok=True)
    claims.to_csv(claims_table(profile)[0], index=False)
    text = write_index(profile)
    summary = text[text.index("## Summary"):text.index("## Contents")]
    fig6, table2 = section("fig6_templates"), section("table2_ood")
    assert (f"| [Figure 6: {fig6.title}](#{anchor(f'{fig6.paper}: {fig6.title}')}) | largest \\|x - y\\| | 1e-11 | "
            "identity | 1 holds |") in summary
    assert "| 1 fails, 1 was not run |" in summary
    assert "The paper's claims, each counted once: **2 claims: 1 fails, 1 was not run**" in summary  # not the identity
    for s in (fig6, table2):  # the contents link each section's heading
        assert f"## {s.paper}: {s.title}" in text and f"](#{anchor(f'{s.paper}: {s.title}')})" in text
    assert "*Figure 6, honestly captioned.*" in text
    assert "Table 2: short.\n\n| method   |   ours |" in text  # a short table inline
    assert "Every metric: long.\n\n72 rows, not shown here: [csv](tables/table2_ood_metrics.csv)" in text
    assert text.index("## Summary") < text.index("## Contents") < text.index(f"## {fig6.paper}")


def test_the_readme_headline_shows_each_hero_figures_finding(tmp_path, monkeypatch):
    """A hero figure of the README carries the first line of its caption: what it finds, even against the paper."""
    monkeypatch.chdir(tmp_path)
    profile = load_profile(str(REPO_ROOT / "params" / "tiny.yaml"))
    write_outputs(profile)
    figures = profile.outputs / "figures"
    figures.mkdir()
    (figures / "fig2_amplitude_swap.png").write_bytes(b"png")
    (figures / "fig2_amplitude_swap.md").write_text("It finds the opposite of the paper.\nDetails.\n")
    block = headline(profile)
    assert ("![Figures 2 and 3 (section 1): Predictions after swapping amplitude spectra]"
            "(outputs/tiny/figures/fig2_amplitude_swap.png)\n\n*It finds the opposite of the paper.*\n") in block
    assert "Details." not in block
