"""environment.yml (conda) and pyproject.toml (pip) install the same packages with the same bounds."""
import re
import tomllib

import yaml

from apr_lib.study.config import REPO_ROOT

CONDA_TO_PIP = {"pytorch": "torch"}  # conda-forge's names for the same packages


def split(requirement: str) -> tuple[str, str]:
    name, spec = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", requirement.strip()).groups()
    return name.lower(), spec.replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pip = dict(split(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"])

    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    conda, pip_section = {}, {}
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            pip_section.update(split(r) for r in entry["pip"])
        else:
            name, spec = split(entry)
            conda[CONDA_TO_PIP.get(name, name)] = spec
    python_spec = conda.pop("python")
    conda.pop("pip")
    assert python_spec == project["requires-python"]
    assert {**conda, **pip_section} == pip
