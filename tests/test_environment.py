"""The install: environment.yml (conda) and pyproject.toml (pip) install the same packages with the same bounds,
the extras build on one another, and every installed dependency admits the Python that pyproject.toml requires."""
import re
import tomllib
from importlib.metadata import PackageNotFoundError, metadata

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from apr_lib.study.config import REPO_ROOT

CONDA_TO_PIP = {"pytorch": "torch"}  # conda-forge's names for the same packages
PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
SELF = PROJECT["name"]


def split(requirement: str) -> tuple[str, str]:
    name, spec = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", requirement.strip()).groups()
    return name.lower(), spec.replace(" ", "")


def requirements(group: str | None = None) -> dict[str, str]:
    """Name -> bounds of the core (group None) or of an extra, without the extra's references to other extras."""
    listed = PROJECT["dependencies"] if group is None else PROJECT["optional-dependencies"][group]
    return dict(split(r) for r in listed if not r.startswith(f"{SELF}["))


def every_requirement() -> dict[str, str]:
    merged = requirements()
    for group in PROJECT["optional-dependencies"]:
        merged |= requirements(group)
    return merged


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    conda, pip_section = {}, []
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            pip_section += entry["pip"]
        else:
            name, spec = split(entry)
            conda[CONDA_TO_PIP.get(name, name)] = spec
    python_spec = conda.pop("python")
    conda.pop("pip")
    assert python_spec == PROJECT["requires-python"]
    assert pip_section[-1] == "-e .[all]"  # the project itself, with every extra
    assert {**conda, **dict(split(r) for r in pip_section[:-1])} == every_requirement()


def test_extras_build_on_one_another():
    """The core stays light; `dev` (the README's install) and `all` bring every extra."""
    extras = PROJECT["optional-dependencies"]
    assert set(requirements()) == {"torch", "torchvision", "numpy", "scipy", "pillow", "tqdm"}
    assert f"{SELF}[pipeline]" in extras["explorer"]
    assert f"{SELF}[pipeline,explorer]" in extras["dev"]
    assert extras["all"] == [f"{SELF}[pipeline,explorer,dev]"]


@pytest.mark.parametrize("name", sorted(every_requirement()))
def test_installed_dependencies_admit_the_required_python(name):
    """A dependency whose installed version needs a newer Python than ours would make `pip install` fail there."""
    minimum = Version(re.fullmatch(r">=\s*([\d.]+)", PROJECT["requires-python"]).group(1))
    try:
        requires_python = metadata(name).get("Requires-Python")
    except PackageNotFoundError:
        pytest.skip(f"{name} is not installed here")
    if not requires_python:
        pytest.skip(f"{name} declares no Requires-Python")
    assert SpecifierSet(requires_python).contains(minimum), (
        f"{name} {metadata(name)['Version']} requires Python {requires_python}, but pyproject.toml admits "
        f"{PROJECT['requires-python']}")
