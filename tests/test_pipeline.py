"""The tiny profile end to end through Snakemake, in a temporary copy of the project."""
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.text import Text

from apr_lib import per_image
from apr_lib.paper import fig9_amp_phase_labels, table1_corruption, table2_ood, table3_adversarial
from apr_lib.paper.index import anchor, ledger_problems
from apr_lib.paper.manifest import manifest_file
from apr_lib.paper.report import KINDS, VERDICTS, check_readable, rounded
from apr_lib.progress import VARIABLE as PROGRESS_VARIABLE
from apr_lib.study.config import REPO_ROOT, load_profile, table_runs
from apr_lib.study.sections import SECTIONS
from apr_lib.study.targets import claims_table, index_page, published_runs, section_outputs
from conftest import HANG_SECONDS

pytestmark = pytest.mark.slow


def copy_project(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "Snakefile", dest)
    for folder in ("params", "notebooks", "profiles"):  # profiles/default: the workflow profile every run reads
        shutil.copytree(REPO_ROOT / folder, dest / folder)
    return dest


def snakemake(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["snakemake", "--cores", "2", *args], cwd=project, capture_output=True, text=True,
                          timeout=HANG_SECONDS)


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("project"))
    result = snakemake(project, "all", "--config", "profile=tiny")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return project


def test_all_produces_every_declared_output(tiny_project):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny_project)
        profile = load_profile("tiny")
        expected = [p for s in SECTIONS for p in section_outputs(profile, s)] + claims_table(profile) + [index_page(profile)]
    missing = [str(p) for p in expected if not (tiny_project / p).is_file()]
    assert not missing
    assert (tiny_project / "outputs/tiny/figures/fig7_apr_examples.png").stat().st_size > 10_000


def test_table1_numbers_come_from_the_metrics_files(tiny_project):
    table = pd.read_csv(tiny_project / "outputs/tiny/tables/table1_corruption.csv")
    assert list(table["method"]) == ["Standard", "APR-P", "APR-S", "APR-SP", "APR-SP, released wrap"]
    assert ((table["ours_low"] <= table["ours"]) & (table["ours"] <= table["ours_high"])).all()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny_project)
        runs = table_runs(load_profile("tiny"), "table1_corruption")
    for run, row in zip(runs, table.itertuples()):
        metrics = tiny_project / "outputs/tiny/metrics" / run.name
        # each number rounded once, to the one decimal every table shows (apr_lib.paper.report.rounded)
        assert row.ours == rounded(json.loads((metrics / "corruption.json").read_text())["mean_corruption_error"], 1)
        assert row.clean_error == rounded(json.loads((metrics / "clean.json").read_text())["error"], 1)
    assert list(table["paper"]) == [29.0, 19.7, 12.2, 10.0, 10.0]  # CIFAR-10-C mean row of params/paper_results.yaml
    markdown = (tiny_project / "outputs/tiny/tables/table1_corruption.md").read_text()
    assert "Fashion-MNIST" in markdown and "CIFAR-10-C" in markdown  # says what was run and what it is compared to
    assert "wrap-around" in markdown and "% of the pixels" in markdown  # why APR-S clips, and by how much it wraps


def test_every_metrics_file_has_its_per_image_results(tiny_project):
    metrics = sorted((tiny_project / "outputs/tiny/metrics").rglob("*.json"))
    suites = [m for m in metrics if m.stem in ("clean", "corruption", "ood", "autoattack")]
    assert suites and all(m.with_suffix(".npz").is_file() for m in suites)
    for path in suites:
        result, kept = json.loads(path.read_text()), per_image.load(path.with_suffix(".npz"))
        if path.stem == "clean":
            assert 100 * (1 - kept["correct"].mean()) == pytest.approx(result["error"])
        elif path.stem == "corruption":
            assert 100 * (1 - kept["correct"].mean()) == pytest.approx(result["mean_corruption_error"])
        elif path.stem == "autoattack":
            attack = result["attacks"][-1]
            assert 100 * kept[f"robust__{attack}"].mean() == pytest.approx(result["results"][-1]["robust_accuracy"])
        else:
            assert sorted(kept["sets"]) == sorted(result["sets"]) and len(kept["in__msp_log_odds"]) == result[
                "in_distribution"]["n"]
    size = sum(p.stat().st_size for p in (tiny_project / "outputs/tiny/metrics").rglob("*.npz"))
    assert size < 2_000_000


def test_table4_and_calibration_come_from_the_metrics_files(tiny_project):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny_project)
        runs = table_runs(load_profile("tiny"), "table1_corruption")
    metrics = {run.name: {suite: json.loads((tiny_project / "outputs/tiny/metrics" / run.name / f"{suite}.json")
                                            .read_text()) for suite in ("clean", "corruption")} for run in runs}
    calibration = pd.read_csv(tiny_project / "outputs/tiny/tables/table1_calibration.csv")
    for run, row in zip(runs, calibration.itertuples()):
        assert row.clean_calibration_error == rounded(metrics[run.name]["clean"]["calibration_error"], 1)
        assert row.corruption_calibration_error == rounded(
            metrics[run.name]["corruption"]["mean_corruption_calibration_error"], 1)
    table4 = pd.read_csv(tiny_project / "outputs/tiny/tables/table4_imagenet_c.csv").set_index(["method", "numbers"])
    standard, apr_sp = (metrics[f"fmnist/small_cnn/{m}/seed0"]["corruption"]["errors"]["gaussian_noise"]
                        for m in ("standard", "apr_sp"))
    assert table4.loc[("APR-SP", "ours"), "gaussian_noise"] == rounded(
        100 * sum(apr_sp.values()) / sum(standard.values()), 1)  # relative CE: our Standard = 100
    assert table4.loc[("Standard", "ours"), "mce"] == pytest.approx(100)
    assert table4.loc[("APR-SP", "paper"), "mce"] == 65.0  # ImageNet-C, params/paper_results.yaml
    markdown = (tiny_project / "outputs/tiny/tables/table4_imagenet_c.md").read_text()
    assert "relative CE: normalised by our Standard model on Fashion-MNIST-C, not AlexNet on ImageNet-C" in markdown


def test_fig4_fig9_and_ablation_come_from_the_metrics_files(tiny_project):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny_project)
        profile = load_profile("tiny")
        runs = {t: table_runs(profile, t) for t in ("fig4_amp_phase_grid", "ablation_paper_vs_code")}

    def clean_error(run) -> float:
        return json.loads((tiny_project / "outputs/tiny/metrics" / run.name / "clean.json").read_text())["error"]

    grid = pd.read_csv(tiny_project / "outputs/tiny/tables/fig4_amp_phase_grid.csv")
    assert len(grid) == 16 and grid["paper"].notna().all()  # the paper's whole grid beside our cells
    measured = sorted(100 - clean_error(run) for run in runs["fig4_amp_phase_grid"])
    assert sorted(grid["ours"].dropna()) == [rounded(v, 1) for v in measured]
    assert pd.read_csv(tiny_project / "outputs/tiny/tables/fig9_amp_phase_labels.csv")["lambda"].tolist() == [0.0, 1.0]
    ablation = pd.read_csv(tiny_project / "outputs/tiny/tables/ablation_paper_vs_code.csv").set_index("option")
    released, keep_clean = runs["ablation_paper_vs_code"]  # wrap (Table 1's apr_sp@wrap run) and ablation-keep_clean
    assert ablation.loc["clean batch kept", "clean_error_released"] == rounded(clean_error(released), 2)
    assert ablation.loc["clean batch kept", "clean_error_paper_text"] == rounded(clean_error(keep_clean), 2)
    assert "identical on 1-channel data" in ablation.loc["FFT", "note"]


def test_fig6_fig8_and_fourier_heatmap_claims_are_measured(tiny_project):
    claims = pd.read_csv(tiny_project / "outputs/tiny/tables/claims.csv", keep_default_na=False).groupby("section")
    fig6 = claims.get_group("fig6_templates")
    assert list(fig6["verdict"]) == ["holds"]  # Eq. (4) is an identity: it holds on any data, trained or not
    assert list(fig6["kind"]) == ["identity"] and float(fig6["ours"].iloc[0].split()[0]) < 1e-9  # radians
    for section, rows in (("fig8_gradcam", 1), ("fourier_heatmap", 1)):
        measured = claims.get_group(section)  # tiny runs of one seed: measured, with intervals, no verdict beyond
        assert len(measured) == rows and set(measured["verdict"]) == {"inconclusive"}  # inconclusive
        assert all(" vs " in ours for ours in measured["ours"]) and (pd.to_numeric(measured["low"]) <= pd.to_numeric(measured["high"])).all()
    assert "conditions (all must hold)" in claims.get_group("fig8_gradcam")["note"].iloc[0]  # one claim, 3 measures
    for figure in ("fig6_templates", "fig8_gradcam", "fourier_heatmap"):
        assert (tiny_project / f"outputs/tiny/figures/{figure}.pdf").stat().st_size > 10_000

def test_table3_numbers_come_from_the_metrics_files(tiny_project):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny_project)
        runs = table_runs(load_profile("tiny"), "table3_adversarial")
    table = pd.read_csv(tiny_project / "outputs/tiny/tables/table3_adversarial.csv")
    assert list(table["method"]) == ["FGSM", "FGSM w/ APR-SP", "FGSM, batch duplicated (control)"]
    for run, row, epochs in zip(runs, table.itertuples(), (1, 3, 1)):  # the variants' epochs (tiny.yaml)
        metrics = tiny_project / "outputs/tiny/metrics" / run.name
        attack = json.loads((metrics / "autoattack.json").read_text())["results"][0]
        assert (row.clean, row.ours) == (rounded(attack["clean_accuracy"], 1), rounded(attack["robust_accuracy"], 1))
        assert json.loads((metrics / "train.json").read_text())["epochs"] == epochs
    assert list(table["paper"][:2]) == [43.2, 45.7] and np.isnan(table["paper"][2])  # params/paper_results.yaml
    markdown = (tiny_project / "outputs/tiny/tables/table3_adversarial.md").read_text()
    assert "Fashion-MNIST" in markdown and "reduced AutoAttack: APGD-CE only" in markdown


def test_table2_and_fig2_fig5_come_from_measurements(tiny_project):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny_project)
        profile = load_profile("tiny")
        runs = table_runs(profile, "table2_ood")
    table = pd.read_csv(tiny_project / "outputs/tiny/tables/table2_ood.csv")
    measured = table[table["note"].isna()]
    assert list(measured["method"]) == ["CE", "CE w/ APR-SP"]  # tiny.yaml's table2_ood methods
    for run, row in zip(runs, measured.itertuples()):
        ood = json.loads((tiny_project / "outputs/tiny/metrics" / run.name / "ood.json").read_text())
        assert row.ours == rounded(ood["msp"]["mean"]["auroc"], 1)
        assert row.mean_max_logit == rounded(ood["max_logit"]["mean"]["auroc"], 1)
        assert [getattr(row, name) for name in profile["ood"]["sets"]] == [
            rounded(ood["msp"][name]["auroc"], 1) for name in profile["ood"]["sets"]]
    assert list(table["paper"]) == [88.1, 92.0, 94.0, 94.7]  # CE, SupCLR, CSI, APR-SP of params/paper_results.yaml
    assert "OOD positive" in (tiny_project / "outputs/tiny/tables/table2_ood_metrics.md").read_text()
    claims = pd.read_csv(tiny_project / "outputs/tiny/tables/claims.csv", keep_default_na=False).groupby("section")
    for section, rows in (("fig2_amplitude_swap", 3), ("fig5_tsne", 2)):
        assert len(claims.get_group(section)) == rows
        assert set(claims.get_group(section)["verdict"]) <= {"holds", "fails", "inconclusive"}  # measured
    stats = pd.read_csv(tiny_project / "outputs/tiny/tables/fig2_swap_stats.csv")
    shares = stats[["follows_amplitude", "follows_phase", "neither"]].sum(axis=1)
    assert shares.to_numpy() == pytest.approx([100.0] * len(stats), abs=0.15)  # three shares, each rounded
    separability = pd.read_csv(tiny_project / "outputs/tiny/tables/fig5_separability.csv")
    control = separability[separability["comparison"].str.startswith("control")]["probe_accuracy"].iloc[0]
    assert 30 < control < 70  # two sets of test images: the probe is near chance


def test_executed_notebooks_ran_without_errors(tiny_project):
    for s in SECTIONS:
        nb = nbformat.read(tiny_project / f"outputs/tiny/notebooks/{s.notebook}.ipynb", as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors
        parameters = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert parameters and "params/tiny.yaml" in parameters[0].source  # papermill passed the profile


def test_executed_notebooks_carry_plain_text_progress_not_widgets(tiny_project):
    """A widget saved in an executed notebook shows only its first state in a viewer (apr_lib.progress)."""
    for s in SECTIONS:
        text = (tiny_project / f"outputs/tiny/notebooks/{s.notebook}.ipynb").read_text()
        assert "application/vnd.jupyter.widget" not in text, s.notebook
    assert not (tiny_project / "outputs/tiny/scratch").exists()  # the DAG writes the reference outputs


def test_the_loaded_weights_are_published_with_their_checksums(tiny_project):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny_project)
        profile = load_profile("tiny")
        runs = published_runs(profile)
    recorded = json.loads((tiny_project / "outputs/tiny/manifest.json").read_text())["weights"]
    assert set(recorded) == {run.name for run in runs} and runs
    for run in runs:
        for name in ("model.pt", "config.json"):
            trained, published = (tiny_project / folder / run.name / name
                                  for folder in ("runs/tiny", "outputs/tiny/weights"))
            assert published.read_bytes() == trained.read_bytes()
            assert recorded[run.name][name]["sha256"] == hashlib.sha256(published.read_bytes()).hexdigest()


def test_a_fresh_clone_runs_the_model_notebooks_by_hand_and_git_stays_clean(tiny_project, tmp_path):
    """A clone holds outputs/ with the published weights and the manifest, and no runs/. The notebooks that load
    models run as a reader runs them (papermill with their default parameters, from notebooks/), on the published
    copies, and write to the scratch folder only: git sees no change."""
    clone = tmp_path / "clone"
    shutil.copytree(tiny_project, clone, ignore=shutil.ignore_patterns("runs", "data", ".snakemake"))
    (clone / "data").symlink_to(tiny_project / "data", target_is_directory=True)
    # The repository's .gitignore, with outputs/tiny/ kept as this copy's reference run, as a clone keeps outputs/default/
    ignore = (REPO_ROOT / ".gitignore").read_text()
    ignore = ignore.replace("/outputs/tiny/\n", "").replace("/outputs/default/", "/outputs/tiny/")
    assert "!/outputs/tiny/weights/" in ignore
    (clone / ".gitignore").write_text(ignore)
    git = lambda *args: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=clone,
                                       capture_output=True, text=True, check=True).stdout
    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "clone")
    assert "outputs/tiny/weights/fmnist/small_cnn/apr_sp/seed0/model.pt" in git("ls-files")
    loading = [s for s in SECTIONS if s.weights_of]
    assert {s.key for s in loading} == {"fig2_amplitude_swap", "fig8_gradcam", "fourier_heatmap"}
    env = {k: v for k, v in os.environ.items() if k != PROGRESS_VARIABLE}
    for s in loading:
        result = subprocess.run(["papermill", "--log-level", "WARNING", f"{s.notebook}.ipynb",
                                 str(tmp_path / f"{s.notebook}.ipynb"), "-p", "profile", "tiny"],
                                cwd=clone / "notebooks", capture_output=True, text=True, timeout=HANG_SECONDS, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        for figure in s.figures:
            assert (clone / f"outputs/tiny/scratch/figures/{figure}.png").stat().st_size > 10_000
        assert (clone / f"outputs/tiny/scratch/claims/{s.key}.csv").is_file()
    assert git("status", "--porcelain") == ""


def test_tables_are_rounded_once_and_agree_with_each_other(tiny_project):
    """No float noise (83.14999999999999) in any table; the same model's number is the same in every table."""
    tables = tiny_project / "outputs/tiny/tables"
    for path in tables.glob("*.csv"):
        if path.stem != "claims":
            assert not re.search(r"\d\.\d{4,}", path.read_text()), path.name
    for path in tables.glob("*.md"):
        assert not re.search(r"\|\s*nan\s*\|", path.read_text()), path.name
    table2 = pd.read_csv(tables / "table2_ood.csv").dropna(subset=["ours"]).set_index("method")["test_acc"]
    detail = pd.read_csv(tables / "table2_ood_metrics.csv").groupby("method")["test_acc"].agg(["min", "max"])
    assert (detail["min"] == detail["max"]).all() and (detail.loc[table2.index, "min"] == table2).all()


def test_plots_show_the_spread_over_seeds(tiny_project, tmp_path):
    """With several seeds the plots draw ±1 sd and each seed: the tiny run's metrics copied to seeds 1 and 2 with
    shifted numbers."""
    project = tmp_path / "seeds"
    shutil.copytree(tiny_project / "params", project / "params")
    profile_file = project / "params/tiny.yaml"
    profile_file.write_text(re.sub(r"seeds: \[[\d, ]*\]", "seeds: [0, 1, 2]", profile_file.read_text()))  # tables' too
    for seed0 in (tiny_project / "outputs/tiny/metrics").rglob("seed0"):
        for seed, shift in ((0, 0.0), (1, 2.0), (2, -2.0)):
            folder = project / seed0.relative_to(tiny_project).parent / f"seed{seed}"
            folder.mkdir(parents=True)
            for path in seed0.glob("*.json"):  # every decimal number shifted: errors, accuracies, AUROCs
                text = re.sub(r"(?<=: )-?\d+\.\d+", lambda m: str(float(m[0]) + shift), path.read_text())
                (folder / path.name).write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        profile = load_profile("tiny")
        figures = {"fig9": fig9_amp_phase_labels.figure(profile, fig9_amp_phase_labels.measure(profile)),
                   "table1": table1_corruption.per_corruption_figure(profile, table1_corruption.measure(profile)),
                   "table2": table2_ood.per_set_figure(profile, table2_ood.measure(profile)),
                   "table3": table3_adversarial.attack_figure(profile, table3_adversarial.measure(profile))}
    for name, fig in figures.items():
        check_readable(fig, name)
        bars = [c for ax in fig.axes for c in ax.containers if isinstance(c, ErrorbarContainer) or c.errorbar]
        assert bars, f"{name}: no error bars over 3 seeds"
        assert "mean of 3 seeds" in " ".join(t.get_text() for t in fig.findobj(Text)), name


def test_claims_and_index_cover_every_section(tiny_project):
    claims = pd.read_csv(tiny_project / "outputs/tiny/tables/claims.csv", keep_default_na=False)
    assert set(claims["section"]) == {s.key for s in SECTIONS}
    assert set(claims["verdict"]) <= set(VERDICTS) and set(claims["kind"]) == set(KINDS)
    assert ledger_problems(claims) == []  # every holds / fails on an interval that excludes 0; one verdict a claim
    fig9 = claims[claims["section"] == "fig9_amp_phase_labels"]
    assert set(fig9["seeds"]) == {"2"}  # the section's own seeds, with a seed level in the intervals
    assert "one seed" not in " ".join(fig9["note"])
    index = (tiny_project / "outputs/tiny/index.md").read_text()
    for s in SECTIONS:
        assert s.paper in index
        for figure in s.figures:
            assert f"figures/{figure}.png" in index


def test_index_lists_every_output_of_all_and_nothing_else(tiny_project):
    out = tiny_project / "outputs/tiny"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny_project)
        profile = load_profile("tiny")
        declared = {p.relative_to(profile.outputs).as_posix() for s in SECTIONS for p in section_outputs(profile, s)}
        declared |= {p.relative_to(profile.outputs).as_posix() for p in claims_table(profile) + [manifest_file(profile)]}
    index = (out / "index.md").read_text()
    links = set(re.findall(r"\]\(([^)\s]+)\)", index))  # markdown links and images
    anchors = {link for link in links if link.startswith("#")}  # the summary and contents
    assert declared <= links  # nothing missing
    assert not [link for link in links - anchors if not (out / link).is_file()]  # nothing stale: every link resolves
    headings = {f"#{anchor(h)}" for h in re.findall(r"^#+ (.+)$", index, re.MULTILINE)}
    assert anchors and anchors <= headings  # every section of the contents is on the page
    on_disk = {p.relative_to(out).as_posix() for folder in ("tables", "figures", "notebooks", "claims")
               for p in (out / folder).rglob("*") if p.is_file()}
    assert on_disk <= declared  # nothing there that `all` does not declare (and so the index would not show)


def test_manifest_says_what_made_the_outputs_and_how_long_it_took(tiny_project):
    manifest = json.loads((tiny_project / "outputs/tiny/manifest.json").read_text())
    assert manifest["cores"] == 2 and manifest["profile"]["name"] == "tiny"
    assert manifest["execution"]["executor"] == "local"  # from the Snakefile's onstart
    assert manifest["git"]["commit"] is None  # the temporary copy is not a git checkout, and says so
    assert {"python", "torch", "torchvision", "snakemake", "papermill", "numpy", "scikit-learn", "pyautoattack",
            "apr-companion"} <= set(manifest["packages"])
    assert manifest["device"]["cpu"] and manifest["device"]["cpu_count"] >= 1
    wall = manifest["wall_time"]
    rules = {job["rule"] for job in wall["jobs"]}
    assert {"data", "train", "evaluate", "notebook", "claims", "index"} <= rules and not wall["stale_benchmarks"]
    assert sum(rule["jobs"] for rule in wall["per_rule"].values()) == len(wall["jobs"])
    assert 0 < wall["total_seconds"] <= wall["job_seconds"]  # jobs ran in parallel on 2 cores
    assert wall["job_seconds"] == pytest.approx(sum(job["seconds"] for job in wall["jobs"]), abs=0.01)


def test_second_run_has_nothing_to_do(tiny_project):
    result = snakemake(tiny_project, "all", "--config", "profile=tiny", "--dry-run")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_misspelt_profile_key_fails_before_any_job(tmp_path):
    project = copy_project(tmp_path / "project")
    profile = project / "params" / "tiny.yaml"
    profile.write_text(profile.read_text().replace("  epochs: 2", "  epoch: 2"))
    result = snakemake(project, "all", "--config", "profile=tiny")
    assert result.returncode != 0
    assert "unknown key 'epoch' (did you mean 'epochs'?)" in result.stdout + result.stderr
    assert not (project / "outputs").exists() and not (project / "runs").exists()
