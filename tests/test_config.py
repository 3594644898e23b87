"""Profiles: validation that names the key, run names, and the paths the DAG relies on."""
import copy
from pathlib import Path

import pytest
import yaml

from apr_lib.study.config import (REPO_ROOT, RunSpec, load_profile, metrics_file, run_config, run_dir,
                                  table_runs)
from apr_lib.errors import ProfileError
from apr_lib.names import config_digest

PROFILES = ["tiny", "default", "cifar"]


def write_profile(tmp_path: Path, edit) -> Path:
    cfg = yaml.safe_load((REPO_ROOT / "params" / "tiny.yaml").read_text())
    edit(cfg)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("name", PROFILES)
def test_shipped_profiles_are_valid(name):
    profile = load_profile(name)
    assert profile.name == name
    assert table_runs(profile, "table1_corruption")


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c["train"].update(epoch=3), "unknown key 'epoch' (did you mean 'epochs'?)"),
    (lambda c: c.update(sedes=[0]), "unknown key 'sedes' (did you mean 'seeds'?)"),
    (lambda c: c["train"].update(epochs="three"), "key train.epochs: 'three' is not of type 'integer'"),
    (lambda c: c["train"].update(epochs=-2), "key train.epochs: -2 is less than the minimum of 1"),
    (lambda c: c["apr"].update(fft_mode="2d"), "key apr.fft_mode: '2d' is not one of"),
    (lambda c: c["tables"]["table1_corruption"].update(methods=["standard", "apr_x"]),
     "key tables.table1_corruption.methods: unknown value 'apr_x'; registered: standard, cutout, mixup"),
    (lambda c: c["tables"]["table1_corruption"].update(archs=["resnet9"]),
     "key tables.table1_corruption.archs: unknown value 'resnet9'"),
    (lambda c: c.update(dataset="mnist"), "key dataset: unknown value 'mnist'"),
    (lambda c: c["eval"].update(corruptions=["fogg"]), "key eval.corruptions: unknown value 'fogg'"),
    (lambda c: c.pop("train"), "'train' is a required property"),
    (lambda c: c.update(variants={"fast": {"train": {"epochz": 1}}}),
     "variants.fast: in train: unknown key 'epochz' (did you mean 'epochs'?)"),
    (lambda c: c["tables"]["table1_corruption"].update(variants=["slow"]),
     "key tables.table1_corruption.variants: unknown value 'slow'"),
    (lambda c: c["tables"].update(table9_bogus={"archs": ["small_cnn"], "methods": ["standard"]}),
     "key tables: unknown value 'table9_bogus'"),
])
def test_bad_profiles_fail_with_a_message_naming_the_key(tmp_path, edit, expected):
    path = write_profile(tmp_path, edit)
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_missing_profile_and_bad_yaml(tmp_path):
    with pytest.raises(ProfileError, match="no file .*nonexistent.yaml. Available profiles: .*default"):
        load_profile("nonexistent")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(str(bad))


def test_run_names_round_trip_and_reject_garbage():
    run = RunSpec("fmnist", "small_cnn", "apr_sp", 0)
    assert run.name == "fmnist/small_cnn/apr_sp/seed0"
    assert RunSpec.parse(run.name) == run
    with pytest.raises(ProfileError, match=r"<dataset>/<arch>/<method>\[@<variant>\]/seed<k>"):
        RunSpec.parse("fmnist/small_cnn/apr_sp")


def test_run_paths_and_config():
    profile = load_profile("tiny")
    run = RunSpec("fmnist", "small_cnn", "standard", 0)
    assert run_dir(profile, run) == Path("runs/tiny/fmnist/small_cnn/standard/seed0")
    assert metrics_file(profile, run, "clean") == Path("outputs/tiny/metrics/fmnist/small_cnn/standard/seed0/clean.json")
    cfg = run_config(profile, run)
    assert "apr" not in cfg  # a run reads only the keys it uses, so APR options never retrain Standard
    assert "apr" in run_config(profile, RunSpec("fmnist", "small_cnn", "apr_p", 0))
    with pytest.raises(ProfileError, match="differs from the profile's dataset"):
        run_config(profile, RunSpec("cifar10", "small_cnn", "standard", 0))


def test_config_digest_changes_with_what_the_run_reads():
    profile = load_profile("tiny")
    run = RunSpec("fmnist", "small_cnn", "apr_p", 0)
    cfg = run_config(profile, run)
    changed = copy.deepcopy(cfg)
    changed["apr"]["p_prob"] = 0.5
    assert config_digest(cfg) == config_digest(copy.deepcopy(cfg))
    assert config_digest(cfg) != config_digest(changed)


def test_variants_override_only_the_runs_that_name_them(tmp_path):
    path = write_profile(tmp_path, lambda c: (
        c["variants"].update({"per_channel": {"apr": {"fft_mode": "per_channel"}}, "long": {"train": {"epochs": 9}}}),
        c["tables"]["table1_corruption"].update(variants=["", "per_channel"])))
    profile = load_profile(str(path))
    runs = table_runs(profile, "table1_corruption")
    assert RunSpec("fmnist", "small_cnn", "apr_p", 0, "per_channel") in runs
    plain_methods = [m for m in profile["tables"]["table1_corruption"]["methods"] if "@" not in m]
    assert len(runs) == 2 * len(plain_methods) + len(profile["tables"]["table1_corruption"]["methods"]) - len(plain_methods)
    plain = run_config(profile, RunSpec("fmnist", "small_cnn", "apr_p", 0))
    varied = run_config(profile, RunSpec.parse("fmnist/small_cnn/apr_p@per_channel/seed0"))
    assert plain["apr"]["fft_mode"] == "channel3d" and varied["apr"]["fft_mode"] == "per_channel"
    assert varied["variant"] == "per_channel" and "variant" not in plain
    assert {k: v for k, v in varied["apr"].items() if k != "fft_mode"} == \
        {k: v for k, v in plain["apr"].items() if k != "fft_mode"}
    # A variant's sections enter the config even for a method that does not read them otherwise.
    assert run_config(profile, RunSpec("fmnist", "small_cnn", "standard", 0, "per_channel"))["apr"]["fft_mode"] == "per_channel"
    assert run_config(profile, RunSpec("fmnist", "small_cnn", "standard", 0, "long"))["train"]["epochs"] == 9
    assert RunSpec.parse("fmnist/small_cnn/apr_p@per_channel/seed0").name == "fmnist/small_cnn/apr_p@per_channel/seed0"
    with pytest.raises(ProfileError, match="unknown variant 'nope'"):
        run_config(profile, RunSpec("fmnist", "small_cnn", "apr_p", 0, "nope"))
