"""The three layers: imports point one way (paper -> study -> core) with no cycle, the study layer and the Snakefile
never import torch, the core never imports the pipeline's packages, the registries' torch-free names agree with the
registries, and every section of the paper has its module with the one interface."""
import ast
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from apr_lib import names
from apr_lib.extras import MissingExtraError, require
from apr_lib.study.config import REPO_ROOT
from apr_lib.study.sections import SECTIONS

PACKAGE = "apr_lib"
RANKS = {"core": 0, "study": 1, "paper": 2, "top": 3}
# The entry points (the package's __init__ and cli, the top layer) import lazily so that `import apr_lib.study` and a
# command start without what they do not use (their docstrings say so); anywhere else a function-level import of the
# package would hide a cycle or a reversed import.
LAZY_ALLOWED = ("<package>", "<package>.cli")
PIPELINE_PACKAGES = ("pandas", "yaml", "jsonschema", "snakemake", "matplotlib", "sklearn", "skimage", "papermill",
                     "nbformat", "ipywidgets", "pyautoattack")


def layer(module: str, package: str = PACKAGE) -> str:
    if module == f"{package}.cli":  # the command line: it may import any layer
        return "top"
    for name in ("study", "paper"):
        if module == f"{package}.{name}" or module.startswith(f"{package}.{name}."):
            return name
    return "core"


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package under `root`."""
    files = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imports(path: Path, module: str, modules: set[str]) -> list[tuple[str, int, bool, str]]:
    """(imported module, line, inside a function, source line) of every import statement in `path`; `from a import b`
    names the module a.b where b is a module of the package, else a."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    own_package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: from the importing module's package, `level - 1` packages up
                    anchor = own_package.split(".")[:len(own_package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in child.names]
            else:
                targets = []
            found.extend((target, child.lineno, in_function, lines[child.lineno - 1]) for target in targets)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(text), False)
    return found


def import_problems(root: Path, package: str) -> list[str]:
    """Every import against the direction, every cycle, every function-level import of the package outside the
    entry points, and every function-level import of another package without a reason on its line."""
    files = module_files(root, package)
    entry_points = {name.replace("<package>", package) for name in LAZY_ALLOWED}
    graph: dict[str, set[str]] = {m: set() for m in files}
    problems = []
    for module, path in files.items():
        for target, line, in_function, source in imports(path, module, set(files)):
            where = f"{path.relative_to(root)}:{line}"
            if not (target == package or target.startswith(f"{package}.")):
                if in_function and module not in entry_points and "#" not in source:
                    problems.append(f"{where}: function-level import of {target} without a reason (# ...) on its line")
                continue
            graph[module].add(target)
            if RANKS[layer(module, package)] < RANKS[layer(target, package)]:
                problems.append(f"{where}: {module} ({layer(module, package)}) imports {target} "
                                f"({layer(target, package)}): imports point paper -> study -> core")
            if in_function and module not in entry_points:
                problems.append(f"{where}: {module} imports {target} inside a function; import it at the top")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (or a module importing itself)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component) + [sorted(component)[0]])

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_imports_point_one_way_without_cycles():
    assert import_problems(REPO_ROOT, PACKAGE) == []


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_check_catches_a_reversed_import_a_cycle_and_a_hidden_import(tmp_path):
    """The checker on a small package laid out like apr_lib: clean first, then with each fault."""
    fixture = {"pkg/__init__.py": "", "pkg/core.py": "import os\n", "pkg/other.py": "from pkg import core\n",
               "pkg/study/__init__.py": "", "pkg/study/config.py": "from pkg.core import os\n",
               "pkg/paper/__init__.py": "", "pkg/paper/table.py": "from pkg.study import config\nimport pkg.core\n",
               "pkg/cli.py": "def main():\n    from pkg.paper import table\n"}
    write_package(tmp_path, fixture)
    assert import_problems(tmp_path, "pkg") == []

    write_package(tmp_path, {"pkg/core.py": "from pkg.paper.table import config\n"})  # core reaching up
    problems = import_problems(tmp_path, "pkg")
    assert any("pkg.core (core) imports pkg.paper.table (paper)" in p for p in problems)

    write_package(tmp_path, {"pkg/core.py": "def late():\n    import pkg.other  # a reason\n"})  # core <-> other
    problems = import_problems(tmp_path, "pkg")
    assert "import cycle: pkg.core -> pkg.other -> pkg.core" in problems
    assert any("pkg.core imports pkg.other inside a function" in p for p in problems)

    write_package(tmp_path, {"pkg/core.py": "def late():\n    import json\n"})  # a lazy import with no reason
    assert import_problems(tmp_path, "pkg") == ["pkg/core.py:2: function-level import of json without a reason "
                                                "(# ...) on its line"]


def run_python(code: str, cwd: Path = REPO_ROOT, *options: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *options, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_study_layer_imports_no_torch():
    """Every study module, and every shipped profile loaded and validated against the registries' names."""
    result = run_python(
        "import importlib, pkgutil, sys\n"
        "import apr_lib.study\n"
        "for m in pkgutil.iter_modules(apr_lib.study.__path__): importlib.import_module(f'apr_lib.study.{m.name}')\n"
        "from apr_lib.study.config import load_profile\n"
        "for name in ('default', 'tiny', 'cifar', 'imagenet'): load_profile(name)\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'numpy') if m in sys.modules))\n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_parsing_the_snakefile_imports_no_torch(tmp_path):
    """A dry run of the tiny profile (imports, profile validation, the whole DAG's targets) in a copy of the project."""
    shutil.copy(REPO_ROOT / "Snakefile", tmp_path)
    for folder in ("params", "notebooks"):
        shutil.copytree(REPO_ROOT / folder, tmp_path / folder)
    result = run_python(
        "import sys\n"
        "from snakemake.cli import main\n"
        "try:\n"
        "    main(['all', '--dry-run', '--quiet', '--cores', '1', '--config', 'profile=tiny'])\n"
        "except SystemExit as end:\n"
        "    assert not end.code, f'snakemake exited with {end.code}'\n"
        "print('torch' in sys.modules)\n", tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_training_and_evaluation_jobs_start_without_torchvision():
    """torchvision costs about 2 s of CPU time to import, in every train and evaluate job of the DAG: their code path
    (on in-memory datasets) imports it only where CIFAR, an image folder or a download needs it."""
    result = run_python("import sys\nimport apr_lib.cli, apr_lib.train, apr_lib.evaluate, apr_lib.runs\n"
                        "print('torchvision' in sys.modules)\n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"


def core_modules() -> list[str]:
    return sorted(m for m in module_files(REPO_ROOT, PACKAGE) if layer(m) == "core" and m != PACKAGE)


def test_the_core_imports_none_of_the_pipelines_packages():
    """`import apr_lib.augment` (the library use) and every other core module, timed by -X importtime, which lists
    every module imported."""
    result = run_python(f"import apr_lib.augment\nimport {', '.join(core_modules())}", REPO_ROOT, "-X", "importtime")
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "torch" in imported and "apr_lib" in imported  # the timing lists what it should
    assert sorted(imported & set(PIPELINE_PACKAGES)) == []


def test_a_package_of_an_extra_is_required_with_the_extra_named():
    assert require("json.decoder").__name__ == "json.decoder"
    with pytest.raises(MissingExtraError, match=r'apr_lib_no_such_package.*pip install "apr-companion\[pipeline\]"'):
        require("apr_lib_no_such_package.sub")


def test_the_registries_agree_with_their_torch_free_names():
    from apr_lib import corruptions, data, evaluate, methods, models

    assert tuple(data.DATASETS) == names.DATASETS
    assert tuple(models.ARCHS) == names.ARCHS
    assert tuple(methods.REGISTRY) == tuple(names.METHODS)
    assert tuple(corruptions.FUNCTIONS) == names.CORRUPTIONS
    assert tuple(evaluate.SUITES) == names.SUITES


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.key)
def test_every_section_has_its_module_with_the_one_interface(section):
    """apr_lib.paper.<key>: KEY, measure and claims always; tables where the section has tables, figure and its
    figure_caption where it has one (saved under the section's key)."""
    module = importlib.import_module(f"{PACKAGE}.paper.{section.key}")
    assert module.KEY == section.key
    assert callable(module.measure) and callable(module.claims)
    assert hasattr(module, "tables") == bool(section.tables)
    assert hasattr(module, "figure") == bool(section.figures) == hasattr(module, "figure_caption")
    assert section.figures in ((), (section.key,))
