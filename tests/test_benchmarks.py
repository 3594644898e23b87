"""The benchmarks' own pieces (benchmarks/ are scripts, timed nowhere here).

- the released-style reference does APR-P's arithmetic as apr_lib does, and serves the shapes the loaders promise;
- augment_throughput and gpu_check run end to end on tiny settings (gpu_check's --dry-run, on the CPU);
- docs/performance.md's tables are what benchmarks/results/ gives;
- dag_times reads Snakemake's benchmark files; write_result records the machine beside the numbers.
"""
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from apr_lib.study.config import REPO_ROOT
from apr_lib.spectral import swap_amplitude

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import common  # noqa: E402
import dag_times  # noqa: E402
import performance_tables  # noqa: E402
import released_reference  # noqa: E402


def test_reference_apr_p_does_the_library_arithmetic_batched_and_image_by_image():
    g = torch.Generator().manual_seed(2)
    clean = torch.rand(6, 3, 8, 8, generator=g)
    random.seed(0)  # the batch-level draw: applied
    torch.manual_seed(0)
    batched = released_reference.mix_data(clean, prob=1.0)
    torch.manual_seed(0)
    partner = torch.randperm(len(clean))
    torch.testing.assert_close(batched, swap_amplitude(clean, clean[partner], "channel3d"), atol=1e-5, rtol=0)
    np.random.seed(0)
    per_image = released_reference.apr_p_per_image(clean.numpy(), prob=1.0)
    np.random.seed(0)
    partner = torch.from_numpy(np.random.permutation(len(clean)))
    torch.testing.assert_close(torch.from_numpy(per_image), swap_amplitude(clean, clean[partner], "channel3d"),
                               atol=1e-5, rtol=0)
    random.seed(1)  # random.uniform(0, 1) = 0.13 <= 0.1 is false: the batch passes unchanged
    assert released_reference.mix_data(clean, prob=0.1) is clean


@pytest.mark.parametrize("shape", [(12, 12), (12, 12, 3)])
def test_reference_apr_s_returns_uint8_images_of_the_same_size(shape):
    np.random.seed(0)
    random.seed(0)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    outputs = [released_reference.apr_s(image) for _ in range(20)]
    assert all(o.size == image.size and o.mode == image.mode for o in outputs)
    assert len({o.tobytes() for o in outputs}) > 10  # one random op (and half the time a recombination) per call


@pytest.mark.parametrize("method, views, factor",
                         [("apr_p", 1, 2), ("apr_s", 1, 1), ("apr_sp", 1, 2), ("augmix", 3, 1)])
def test_reference_pipeline_serves_the_inputs_of_each_method(method, views, factor):
    images = np.random.default_rng(0).integers(0, 256, (8, 10, 10, 3), dtype=np.uint8)
    loader = released_reference.released_style_loader(images, np.arange(8), method, batch_size=4, workers=0,
                                                      padding=2, fill=128)
    batches = list(released_reference.released_batches(loader, method, prob=1.0))
    assert len(batches) == 2
    inputs, labels = batches[0]
    inputs = inputs if views == 1 else inputs[0]
    assert inputs.shape == (4 * factor, 3, 10, 10) and labels.shape == (4 * factor,)
    if views == 3:
        assert len(batches[0][0]) == 3


def test_reference_rejects_a_method_it_does_not_implement():
    with pytest.raises(ValueError, match="method 'mixup' has no per-image reference"):
        released_reference.ReleasedStyleDataset(np.zeros((1, 4, 4), np.uint8), np.zeros(1), "mixup", 0, 0)


def write_tsv(path, seconds, cpu):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                    f"{seconds}\t0:00:{int(seconds):02d}\t100.0\t200.0\t50.0\t60.0\t0.0\t0.0\t50.0\t{cpu}\n")


def test_dag_times_reads_rules_jobs_and_the_span(tmp_path, monkeypatch, capsys):
    bench = tmp_path / "runs" / "default" / "benchmarks"
    write_tsv(bench / "data.tsv", 5, 4)
    write_tsv(bench / "train" / "fmnist" / "small_cnn" / "standard" / "seed0.tsv", 30, 25)
    write_tsv(bench / "train" / "fmnist" / "small_cnn" / "apr_sp" / "seed0.tsv", 40, 35)
    for path, end in ((bench / "data.tsv", 1000), (bench / "train/fmnist/small_cnn/standard/seed0.tsv", 1040),
                      (bench / "train/fmnist/small_cnn/apr_sp/seed0.tsv", 1050)):
        os.utime(path, (end, end))
    jobs = dag_times.read_jobs(bench)
    assert sorted(jobs["rule"]) == ["data", "train", "train"]
    assert set(jobs["job"]) == {"", "fmnist/small_cnn/standard/seed0", "fmnist/small_cnn/apr_sp/seed0"}
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(sys, "argv", ["dag_times.py", "--root", str(tmp_path)])
    dag_times.main()
    result = json.loads((tmp_path / "results" / "dag_times_default.json").read_text())
    assert result["settings"]["job_seconds_total"] == 75
    assert result["settings"]["dag_span_seconds"] == 1050 - (1000 - 5)  # last end - earliest start
    assert {row["rule"]: row["jobs"] for row in result["rows"]} == {"train": 2, "data": 1}
    assert "within" in result["summary"] and "budget 45 min" in capsys.readouterr().out


def test_dag_times_says_when_nothing_has_run(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["dag_times.py", "--root", str(tmp_path), "--profile", "tiny"])
    with pytest.raises(SystemExit, match="no Snakemake benchmark files under .*runs/tiny/benchmarks"):
        dag_times.main()


def test_write_result_records_the_machine_beside_the_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("APR_COMMIT", "abc123")
    info = common.machine()
    assert info["commit"] == "abc123" and info["uncommitted_changes"] is None  # a copy: its git state is unknown
    result = common.write_result("demo", info, {"n": 1}, [{"x": 1.0}], "one line", tmp_path / "demo.json", extra=[1])
    on_disk = json.loads((tmp_path / "demo.json").read_text())
    assert on_disk == result and on_disk["extra"] == [1] and on_disk["summary"] == "one line"
    assert set(on_disk["machine"]) >= {"cpu_count", "versions", "load_average_at_start", "load_average_at_end"}


def test_augment_throughput_measures_both_levels_and_refuses_a_busy_result(tmp_path, monkeypatch):
    out = tmp_path / "augment_throughput.json"
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "augment_throughput.py"), "--images", "16",
               "--batch-size", "8", "--repeats", "1", "--workers", "1", "--shapes", "fmnist",
               "--methods", "apr_s", "apr_sp", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    # Nothing else may use more than -1 cores: every run counts as busy, so it is refused and nothing is written.
    refused = subprocess.run(command + ["--max-others-cores", "-1"], env=env, capture_output=True, text=True)
    assert refused.returncode == 3 and "not written" in refused.stdout and not out.exists()
    allowed = subprocess.run(command + ["--max-others-cores", "-1", "--allow-busy"], env=env, capture_output=True,
                             text=True)
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["busy"] and result["summary"].startswith("BUSY MACHINE")
    assert {(r["level"], r["method"]) for r in result["rows"]} == {
        ("pipeline", "apr_s"), ("pipeline", "apr_sp"), ("transform", "apr_s"), ("transform", "apr_sp")}
    assert all(r["speedup"] > 0 and len(r["batched_runs"]) == 1 for r in result["rows"])
    assert set(result["interference"]) == {"pipeline", "transform"}
    table = performance_tables.augment_throughput(result)  # a busy result says so on the page too
    assert "busy machine" in table and "transform: APR-SP (goal 4x)" in table


SPIN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"  # 0.3 s of CPU, however busy


def test_interference_counts_this_process_and_its_children_as_its_own():
    with common.Interference(max_others_cores=-1) as interference:
        exec(SPIN, {})  # this process
        subprocess.run([sys.executable, "-c", SPIN], check=True)  # a child that ends (and is waited for) inside
    assert interference.ours_seconds >= 0.6  # both spins, not counted as other processes' CPU
    record = interference.record()
    assert record["busy"] and "not a clean measurement" in record["note"]  # -1 cores: any use is too much
    assert set(record) >= {"load_average_before", "load_average_after", "others_cores"}


@pytest.mark.slow  # about half a minute: every section once, on the CPU
def test_gpu_check_runs_every_section_in_its_dry_run(tmp_path):
    out = tmp_path / "gpu_check.json"
    result = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out",
                             str(out)], env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    check = json.loads(out.read_text())
    assert all(r["status"] == "ok" for r in check["rows"] + check["packing"]), check
    assert {r["method"] for r in check["rows"] if r["section"] == "steps"} == {"standard", "apr_sp", "apr_sp_released"}
    assert {r["compile"] for r in check["rows"]} == {"off", "default", "reduce-overhead"}
    assert {r["section"] for r in check["rows"]} == {"steps", "compile", "epochs"}
    assert [r["processes"] for r in check["packing"]] == [1, 2]
    assert check["settings"]["skipped"] == [] and set(check["gpu_hours"]) == {"cifar profile", "Table 1"}
    table = performance_tables.gpu_check(check)
    assert "APR-SP as released" in table and "processes sharing the GPU" in table


def test_the_performance_page_tables_are_what_the_results_give():
    page = (REPO_ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    assert performance_tables.update(page) == page, "run `python benchmarks/performance_tables.py`"
    with pytest.raises(SystemExit, match="no block `<!-- begin generated: gpu_check -->`"):
        performance_tables.update(page.replace("<!-- begin generated: gpu_check -->", ""))
