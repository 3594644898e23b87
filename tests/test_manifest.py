"""manifest.json's wall time from Snakemake's benchmark files, its other fields, and README.md's generated headline.

The tiny profile's real manifest and index are checked end to end in tests/test_pipeline.py.
"""
import io
import os
import re
import subprocess
import tarfile
from types import SimpleNamespace

import pandas as pd
import pytest
from snakemake.cli import parse_set_resources, parse_set_threads
from snakemake.resources import Resources
from snakemake.settings.types import ResourceSettings

from apr_lib import cli
from apr_lib.paper import manifest
from apr_lib.study.config import REPO_ROOT, load_profile
from apr_lib.study.targets import claims_table, index_page, published_weights


def write_benchmark(path, seconds, end, cpu=1.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                    f"{seconds}\t0:00:00\t100.0\t200.0\t50.0\t60.0\t0.0\t0.0\t50.0\t{cpu}\n")
    os.utime(path, (end, end))


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outputs/ and runs/ are relative to the project root
    return load_profile(str(REPO_ROOT / "params" / "tiny.yaml"))


def test_wall_time_is_the_span_of_the_dag_jobs_and_leaves_stale_files_out(tiny):
    bench = manifest.benchmark_dir(tiny)
    run = "fmnist/small_cnn/standard/seed0"
    write_benchmark(bench / "data.tsv", 5, 1000)                        # 995 .. 1000
    write_benchmark(bench / "train" / f"{run}.tsv", 30, 1040)          # 1010 .. 1040
    write_benchmark(bench / "evaluate" / "clean" / f"{run}.tsv", 20, 1035)  # 1015 .. 1035, beside the training job
    write_benchmark(bench / "index.tsv", 2, 1200)                       # 1198 .. 1200, after 158 s without a job
    write_benchmark(bench / "evaluate_clean" / f"{run}.tsv", 500, 1100)  # an old rule's file: not a job of this DAG
    wall = manifest.wall_time(tiny)
    assert wall["total_seconds"] == 1200 - 995 and wall["job_seconds"] == 57
    assert wall["per_rule"]["train"] == {"jobs": 1, "seconds": 30.0, "longest_seconds": 30.0, "cpu_seconds": 1.0}
    assert [job["rule"] for job in wall["jobs"]] == ["data", "evaluate", "train", "index"]  # in order of ending
    assert wall["stale_benchmarks"] == [f"evaluate_clean/{run}"]
    assert [gap["seconds"] for gap in wall["idle_gaps"]] == [158]  # the pause is shown, not hidden
    assert "claims" in wall["jobs_without_benchmark"] and f"train/{run}" not in wall["jobs_without_benchmark"]


def test_dag_jobs_name_every_job_as_the_snakefile_names_its_benchmark(tiny):
    jobs = manifest.dag_jobs(tiny)
    assert {("data", ""), ("corrupted_testset", ""), ("claims", ""), ("index", ""),
            ("notebook", "table1_corruption"), ("train", "fmnist/small_cnn/apr_sp/seed0"),
            ("evaluate", "corruption/fmnist/small_cnn/apr_sp/seed0"),
            ("evaluate", "autoattack/fmnist/small_cnn/standard@fgsm/seed0")} <= jobs
    assert ("evaluate", "train/fmnist/small_cnn/apr_sp/seed0") not in jobs  # train.json comes from `train`


def snakemake_settings(executor: str, **settings) -> SimpleNamespace:
    """The parts of Snakemake's `workflow` that manifest.execution reads, parsed as Snakemake's command line does."""
    return SimpleNamespace(executor_plugin=SimpleNamespace(name=executor), resource_settings=ResourceSettings(
        overwrite_threads=parse_set_threads(settings.pop("set_threads", [])),
        overwrite_resources=parse_set_resources(settings.pop("set_resources", [])),
        default_resources=Resources.parse(settings.pop("default_resources", []), allow_expressions=True,
                                          defaults="full"), **settings))


def test_execution_under_a_cluster_executor_records_its_settings_without_cores():
    slurm = snakemake_settings("slurm", nodes=4, set_threads=["train=1"], set_resources=["train:gpu=0",
                               "train:mem_mb=3000"], default_resources=["mem_mb=3000", "runtime=60"])
    assert manifest.execution(slurm) == {  # no --cores (workflow.cores would raise); tmpdir, disk_mb: per job
        "executor": "slurm", "cores": None, "jobs": 4, "resources": {}, "default_resources": {"mem_mb": 3000,
        "runtime": 60}, "set_resources": {"train": {"gpu": 0, "mem_mb": 3000}}, "set_threads": {"train": 1}}
    local = manifest.execution(snakemake_settings("local", cores=2, resources={"gpu": 2}))
    assert (local["executor"], local["cores"], local["resources"]) == ("local", 2, {"gpu": 2})


def test_manifest_records_commit_profile_versions_device_and_execution(tiny):
    write_benchmark(manifest.benchmark_dir(tiny) / "data.tsv", 5, 1000)
    publish_stand_ins(tiny)
    written = manifest.write_manifest(tiny, manifest.execution(snakemake_settings("local", cores=2)))
    on_disk = pd.read_json(manifest.manifest_file(tiny), typ="series")
    assert set(on_disk.index) == {"profile", "git", "packages", "device", "cores", "execution", "wall_time", "weights",
                                  "written"}
    assert written["cores"] == 2 and written["execution"]["executor"] == "local"
    assert written["profile"]["name"] == "tiny" and len(written["profile"]["config_digest"]) == 16
    assert written["git"] == {"commit": None, "dirty": None, "note": "not a git checkout"}  # tmp_path has no .git
    assert written["packages"]["torch"] and written["packages"]["apr-companion"] and written["packages"]["python"]
    assert written["device"]["cpu_count"] >= 1 and written["device"]["torch_default_threads"] >= 1


def publish_stand_ins(profile) -> None:
    """Files where the publish_weights rule copies the weights (tests/test_weights.py checks the real ones)."""
    for path in published_weights(profile):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(path.name)


def test_manifest_without_benchmarks_or_with_a_bad_execution_record_names_the_fix(tiny, capsys):
    publish_stand_ins(tiny)
    assert cli.main(["report", "manifest", "--profile", str(tiny.path)]) == 2
    assert "no Snakemake benchmark files of this DAG's jobs under runs/tiny/benchmarks: run `snakemake --cores 4 all " \
           "--config profile=tiny` first" in capsys.readouterr().err
    write_benchmark(manifest.benchmark_dir(tiny) / "data.tsv", 5, 1000)
    assert cli.main(["report", "manifest", "--profile", str(tiny.path), "--execution", "cores=2"]) == 2
    assert "--execution 'cores=2' is not JSON" in capsys.readouterr().err
    assert cli.main(["report", "manifest", "--profile", str(tiny.path), "--execution", ""]) == 0  # by hand
    assert pd.read_json(manifest.manifest_file(tiny), typ="series")["execution"]["note"] == "not written by a " \
        "Snakemake run"


def write_outputs(profile):
    tables = profile.outputs / "tables"
    tables.mkdir(parents=True)
    pd.DataFrame({"arch": "small_cnn", "method": ["Standard", "APR-P", "APR-S", "APR-SP", "AugMix"],
                  "clean_error": 10.0, "ours": [30.0, 25.0, 24.0, 20.5, 22.0], "ours_low": 1.0, "ours_high": 40.0,
                  "paper": [29.0, 19.7, 12.2, 10.0, 10.9]}).to_csv(tables / "table1_corruption.csv", index=False)
    pd.DataFrame({"arch": "small_cnn", "method": ["CE", "SupCLR", "CE w/ APR-SP"], "test_acc": [90.0, None, 88.0],
                  "test_acc_paper": [94.8, 93.8, 95.1], "ours": [80.0, None, 90.0], "ours_low": [79.0, None, 89.0],
                  "ours_high": [81.0, None, 91.0], "paper": [88.1, 92.0, 94.7]}).to_csv(tables / "table2_ood.csv",
                                                                                    index=False)
    pd.DataFrame({"section": "x", "kind": ["paper", "paper", "paper", "paper", "paper", "beyond paper", "identity"],
                  "counted": ["yes", "yes", "yes", "yes", "no: counted in x", "yes", "yes"],
                  "verdict": ["holds", "holds", "inconclusive", "not run", "holds", "fails", "holds"]}
                 ).to_csv(claims_table(profile)[0])


def test_headline_reads_the_numbers_from_the_tables(tiny):
    write_outputs(tiny)
    block = manifest.headline(tiny)
    assert block.startswith(manifest.README_START) and block.endswith(manifest.README_END)
    assert "| result | ours, Fashion-MNIST | paper, CIFAR-10 |" in block
    assert "| Table 1, Standard: mean corruption error % (clean error %), lower is better | 30.0 [1.0, 40.0] (10.0) |" in block
    assert "| Table 1, APR-SP | 20.5 [1.0, 40.0] (10.0) | 10.0 |" in block  # the measure once per table
    assert "AugMix" not in block and "SupCLR" not in block  # Table 1's four APR rows; Table 2's measured rows only
    assert "| Table 2, CE: mean OOD AUROC % (test accuracy %), higher is better | 80.0 [79.0, 81.0] (90.0) |" in block
    assert "| Table 2, CE w/ APR-SP | 90.0 [89.0, 91.0] (88.0) | 94.7 (95.1) |" in block
    assert "Table 3" not in block  # no such table in this run: left out, not invented
    # the paper's claims only, each once
    assert "**2 of the paper's 4 claims hold**, 1 is inconclusive, 1 was not run" in block
    assert "checks beyond the paper (1), identities of the method's math (1)" in block
    assert f"]({index_page(tiny)})" in block and "Headline results: Fashion-MNIST, small_cnn, 2 epochs (tiny profile)" in block


def test_headline_names_the_attack_as_run(tiny):
    write_outputs(tiny)
    pd.DataFrame({"arch": "small_cnn", "method": ["FGSM", "FGSM w/ Cutout", "FGSM w/ APR-SP"], "images": "first 50",
                  "clean": [70.0, 69.0, 72.0], "clean_paper": [83.3, 81.3, 84.3], "ours": [40.0, 39.0, 42.0],
                  "ours_low": 30.0, "ours_high": 50.0, "paper": [43.2, 41.6, 45.7]}
                 ).to_csv(tiny.outputs / "tables" / "table3_adversarial.csv", index=False)
    block = manifest.headline(tiny)
    assert ("| Table 3, FGSM: accuracy % under APGD-CE (reduced AutoAttack; the paper: standard) (clean accuracy %), "
            "first 50 test images, higher is better | 40.0 [30.0, 50.0] (70.0) | 43.2 (83.3) |") in block
    assert "| Table 3, FGSM w/ APR-SP | 42.0 [30.0, 50.0] (72.0) | 45.7 (84.3) |" in block
    assert "AutoAttack accuracy" not in block


def test_headline_says_how_the_jobs_ran_and_names_no_machine_for_a_cluster_run(tiny):
    write_outputs(tiny)
    publish_stand_ins(tiny)
    write_benchmark(manifest.benchmark_dir(tiny) / "data.tsv", 5, 1000)

    def how_run() -> tuple[str, str]:
        block = manifest.headline(tiny)
        return (re.search(r"Headline results: (.*?) \(tiny profile\)", block).group(1),
                re.search(r"The whole run took [\d.]+ min of wall time(.*?) \(\[manifest\]", block).group(1))

    manifest.write_manifest(tiny, manifest.execution(snakemake_settings("local", cores=2)))
    label, how = how_run()
    assert label.endswith(", CPU") and how.startswith(" with `--cores 2` on ") and "CPU cores" in how
    manifest.write_manifest(tiny, manifest.execution(snakemake_settings("slurm", nodes=100)))
    # the manifest's device is the submitting machine, not the jobs': neither it nor CPU/GPU is claimed
    assert how_run() == ("Fashion-MNIST, small_cnn, 2 epochs", " through Snakemake's `slurm` executor")


def test_readme_block_is_replaced_between_the_markers_only(tiny, tmp_path, capsys):
    write_outputs(tiny)
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{manifest.README_START}\nstale block\n{manifest.README_END}\n\n## Profiles\n")
    assert cli.main(["report", "readme", "--profile", str(tiny.path)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\n") and text.endswith("\n\n## Profiles\n") and "stale block" not in text
    assert manifest.readme_block(readme) == manifest.headline(tiny)
    assert cli.main(["report", "readme", "--profile", str(tiny.path)]) == 0
    assert "already up to date" in capsys.readouterr().out
    readme.write_text("# no markers\n")
    assert cli.main(["report", "readme", "--profile", str(tiny.path)]) == 2
    assert "needs exactly one <!-- headline:start --> line" in capsys.readouterr().err


def committed(paths: list[str], dest) -> bool:
    """Extract `paths` as committed at HEAD into `dest`; False where that is impossible (not a git checkout, or
    nothing committed there)."""
    archive = subprocess.run(["git", "archive", "HEAD", *paths], cwd=REPO_ROOT, capture_output=True)
    if archive.returncode:
        return False
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return True


def test_readme_headline_matches_the_committed_default_outputs(tmp_path, monkeypatch):
    # The reference run as committed, not the working tree: a reader's own `snakemake --cores 4 all` rewrites
    # outputs/default/ with numbers that differ on another CPU, and that must not fail the README's second command.
    if not committed(["README.md", "outputs/default"], tmp_path):
        pytest.skip("no committed reference run (not a git checkout, or outputs/default/ not committed): it cannot be "
                    "told from a run of your own")
    if "kind" not in pd.read_csv(tmp_path / "outputs/default/tables/claims.csv").columns:
        pytest.skip("the committed reference run predates the claims' kinds and intervals: the next reference run "
                    "writes them, and `apr report readme` the headline")
    monkeypatch.chdir(tmp_path)
    profile = load_profile("default")
    assert manifest.readme_block(tmp_path / "README.md") == manifest.headline(profile), \
        "README.md's headline is out of date: run `apr report readme --profile default` and commit both"
