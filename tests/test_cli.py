"""The `apr` command line: registries, and user errors as one clear line with a non-zero exit."""
import subprocess
import sys

from apr_lib.cli import main
from conftest import tiny_profile


def test_help_lists_the_commands():
    out = subprocess.run(["apr", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("list", "check", "data", "train", "eval", "report"):
        assert command in out


def test_list_prints_registered_names(capsys):
    assert main(["list", "methods"]) == 0
    assert capsys.readouterr().out.split() == ["standard", "cutout", "mixup", "cutmix", "adv", "apr_p",
                                               "autoaugment", "augmix", "apr_s", "apr_sp"]
    assert main(["list", "archs"]) == 0
    assert capsys.readouterr().out.split() == [
        "small_cnn", "allconv_small", "densenet16_12", "wrn16_1", "resnext_small", "resnet18_small",  # CPU-sized
        "allconv", "densenet40_12", "densenet_bc100_12", "wrn40_2", "resnext29_4x32", "resnet18",
        "preact_resnet18", "resnet50"]


def test_bad_profile_is_one_message_without_traceback(tmp_path):
    path = tiny_profile(tmp_path, tmp_path / "data", train={"epoch": 3})
    result = subprocess.run([sys.executable, "-m", "apr_lib.cli", "check", "--profile", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown key 'epoch' (did you mean 'epochs'?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_accepts_the_shipped_profiles(capsys):
    for name in ("tiny", "default"):
        assert main(["check", "--profile", name]) == 0
        assert f"valid profile {name!r}" in capsys.readouterr().out
