"""Profiles (params/<name>.yaml), their validation, run names and where each run's files live.

A profile is validated against params/profile.schema.json and the registries' names (datasets,
architectures, methods, corruptions: apr_lib.names, torch-free) when it is loaded: the Snakefile loads it while parsing, so a
bad profile fails before any job runs, with a message naming the file, the key and the fix.

Paths are relative to the project root (the working directory of Snakemake and of `apr`):
    runs/<profile>/<run>/                      checkpoints, weights, resolved config (not in git)
    outputs/<profile>/weights/<run>/           the published copy of the weights the notebooks load (in git)
    outputs/<profile>/metrics/<run>/<suite>.json   the run's measured numbers
    outputs/<profile>/metrics/<run>/<suite>.npz    its per-image results (apr_lib.per_image)
where <run> = <dataset>/<arch>/<method>/seed<k>, e.g. fmnist/small_cnn/apr_sp/seed0.
"""
from __future__ import annotations

import difflib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# jsonschema imports its optional IRI format checker (rfc3987-syntax, which Jupyter installs) at import, building a
# grammar for over a second in every DAG job; profiles use no `format` keyword, so it is kept out.
sys.modules.setdefault("rfc3987_syntax", None)
import jsonschema  # noqa: E402
import yaml  # noqa: E402

from apr_lib import names
from apr_lib.errors import ProfileError
from apr_lib.layout import published_dir as _published_dir
from apr_lib.names import run_name
from apr_lib.study.sections import SECTIONS

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO_ROOT / "params" / "profile.schema.json"


def find_project_root(start: Path | None = None) -> Path:
    """The folder holding the Snakefile and params/, from `start` (default: the working directory) upwards.

    Notebooks call it so that they run the same from JupyterLab (cwd notebooks/) and from papermill.
    """
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "Snakefile").is_file() and (folder / "params").is_dir():
            return folder
    raise ProfileError(f"no project root (a folder with a Snakefile and params/) at or above {start}; "
                       "start Jupyter or papermill inside the project")


@dataclass(frozen=True)
class Profile:
    """A validated profile: `cfg` is the YAML's content, `path` the file it came from. `scratch`: a notebook run by
    hand writes its tables, figures and claims to `products` = outputs/<name>/scratch/ (git-ignored), not over the
    reference outputs that the DAG writes (apr_lib.paper.report.notebook_profile)."""
    path: Path
    cfg: dict
    scratch: bool = False

    @property
    def name(self) -> str:
        return self.cfg["name"]

    @property
    def outputs(self) -> Path:
        return Path("outputs") / self.name

    @property
    def products(self) -> Path:
        """Where tables, figures and claims are written: outputs/<name>/, or its scratch/ folder."""
        return self.outputs / "scratch" if self.scratch else self.outputs

    def __getitem__(self, key: str):
        return self.cfg[key]


def profile_path(name_or_path: str) -> Path:
    """`tiny` -> params/tiny.yaml (in the working directory, else in this repository); a path stays a path."""
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        return Path(name_or_path)
    local = Path("params") / f"{name_or_path}.yaml"
    return local if local.exists() else REPO_ROOT / "params" / f"{name_or_path}.yaml"


def load_profile(name_or_path: str) -> Profile:
    path = profile_path(name_or_path)
    if not path.exists():
        available = sorted(p.stem for p in path.parent.glob("*.yaml") if p.stem != "paper_results")
        raise ProfileError(f"profile {name_or_path!r}: no file {path}. Available profiles: {', '.join(available) or 'none'}")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ProfileError(f"{path}: not valid YAML: {e}") from None
    validate_profile(cfg, path)
    return Profile(path, cfg)


def _schema_error_message(error: jsonschema.ValidationError, schema: dict) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "top level"
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, allowed, n=1)
            hints.append(f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return f"in {where}: {'; '.join(hints)}. Allowed keys: {', '.join(allowed)}"
    if error.validator == "required":
        return f"in {where}: {error.message}"
    return f"key {where}: {error.message}"


def validate_profile(cfg: object, path: Path) -> None:
    """Raise ProfileError naming every problem of `cfg` (the content of `path`)."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    if not isinstance(cfg, dict):
        raise ProfileError(f"{path}: expected a mapping of keys to values, got {type(cfg).__name__}")
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    problems = [_schema_error_message(e, schema) for e in errors]
    for variant in (cfg.get("variants") or {}) if not problems else ():
        merged = with_variant(cfg, variant)
        problems += [f"variants.{variant}: {_schema_error_message(e, schema)}"
                     for e in sorted(validator.iter_errors(merged), key=lambda e: list(e.absolute_path))]
    if not problems:
        problems = _registry_problems(cfg)
    if problems:
        raise ProfileError(f"{path} is not a valid profile (schema: {SCHEMA_FILE.relative_to(REPO_ROOT)}):\n  - "
                           + "\n  - ".join(problems))


def _registry_problems(cfg: dict) -> list[str]:
    def unknown(key: str, values: list[str], registry) -> list[str]:
        return [f"key {key}: unknown value {v!r}; registered: {', '.join(registry)}" for v in values if v not in registry]

    problems = unknown("dataset", [cfg["dataset"]], names.DATASETS)
    problems += unknown("eval.corruptions", cfg["eval"]["corruptions"], names.CORRUPTIONS)
    problems += unknown("tables", list(cfg["tables"]), {s.runs_table for s in SECTIONS if s.runs_table})
    chosen = cfg.get("sections") or [s.key for s in SECTIONS]
    problems += unknown("sections", chosen, [s.key for s in SECTIONS])
    problems += [f"key tables: no {s.runs_table!r}, whose runs section {s.key} reads; add it, or list the profile's "
                 "other sections under `sections:`" for s in SECTIONS
                 if s.key in chosen and s.runs_table and s.runs_table not in cfg["tables"]]
    for table, spec in cfg["tables"].items():
        problems += unknown(f"tables.{table}.archs", spec["archs"], names.ARCHS)
        problems += unknown(f"tables.{table}.methods", [e.partition("@")[0] for e in spec["methods"]], names.METHODS)
        problems += unknown(f"tables.{table}.methods (<method>@<variant>)",
                            [e.partition("@")[2] for e in spec["methods"] if "@" in e], list(cfg.get("variants") or {}))
        problems += unknown(f"tables.{table}.variants", spec.get("variants", [""]), {"", *(cfg.get("variants") or {})})
    return problems


def _merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def with_variant(cfg: dict, variant: str) -> dict:
    """The profile's content with variant `variant`'s overrides merged in ("" = the profile itself)."""
    if not variant:
        return cfg
    variants = cfg.get("variants") or {}
    if variant not in variants:
        raise ProfileError(f"unknown variant {variant!r}; the profile defines: {', '.join(variants) or 'none'} "
                           "(under `variants:`)")
    return _merge(cfg, variants[variant])


RUN_PATTERN = r"[\w-]+/[\w-]+/[\w-]+(?:@[\w.-]+)?/seed\d+"  # also the Snakefile's `run` wildcard


@dataclass(frozen=True, order=True)
class RunSpec:
    """One training run: <dataset>/<arch>/<method>/seed<k>, or <dataset>/<arch>/<method>@<variant>/seed<k>
    for a run of the profile with one of its `variants:` merged in."""
    dataset: str
    arch: str
    method: str
    seed: int
    variant: str = ""

    @property
    def name(self) -> str:
        return run_name(self.dataset, self.arch, self.method, self.seed, self.variant)

    @classmethod
    def parse(cls, name: str) -> "RunSpec":
        match = re.fullmatch(r"([\w-]+)/([\w-]+)/([\w-]+)(?:@([\w.-]+))?/seed(\d+)", name)
        if not match:
            raise ProfileError(f"run {name!r} is not of the form <dataset>/<arch>/<method>[@<variant>]/seed<k>, "
                               "e.g. fmnist/small_cnn/apr_sp/seed0")
        dataset, arch, method, variant, seed = match.groups()
        return cls(dataset, arch, method, int(seed), variant or "")


def run_config(profile: Profile, run: RunSpec) -> dict:
    """Everything that determines a run's result: the run's identity and the profile keys it reads.

    Saved beside the run as config.json; its digest (apr_lib.names.config_digest) decides whether a checkpoint can be
    resumed.
    """
    if run.dataset != profile["dataset"]:
        raise ProfileError(f"run {run.name}: dataset {run.dataset!r} differs from the profile's "
                           f"dataset {profile['dataset']!r} ({profile.path})")
    if run.method not in names.METHODS:
        raise ProfileError(f"run {run.name}: unknown method {run.method!r}; registered: {', '.join(names.METHODS)}")
    merged = with_variant(profile.cfg, run.variant)
    cfg = {"dataset": run.dataset, "arch": run.arch, "method": run.method, "seed": run.seed,
           "data_root": profile["data_root"], "train": merged["train"]}
    # Only the sections a run reads enter its config (e.g. "apr": APR options never re-train Standard);
    # a variant's overridden sections always do.
    overridden = (profile.cfg.get("variants") or {}).get(run.variant, {})
    adversarial = ("adv",) if merged["train"].get("adversarial") else ()  # FGSM's epsilon and step, for any method
    for section in (*names.METHODS[run.method].sections, *adversarial, *overridden):
        cfg[section] = merged[section]
    if run.variant:
        cfg["variant"] = run.variant
    return cfg


def check_data_root(profile: Profile) -> None:
    """Fail before any job when `data_root` cannot be right: a file, or a folder whose parent does not exist
    (a typo: the data job creates only the last folder, e.g. data/ in a fresh clone). Whether the dataset is
    inside is the data job's question: it may still fetch it."""
    root = Path(profile["data_root"]).expanduser()
    fix = f"Fix data_root in {profile.path} (the folder holding the datasets; see README, Profiles)"
    if root.exists() and not root.is_dir():
        raise ProfileError(f"key data_root: {str(root)!r} is a file, not a folder. {fix}.")
    if not root.exists() and not root.parent.is_dir():
        raise ProfileError(f"key data_root: {str(root)!r} does not exist, nor does its parent folder "
                           f"{str(root.parent)!r}. {fix}, or create {root.parent}.")


def run_dir(profile: Profile, run: RunSpec) -> Path:
    return Path("runs") / profile.name / run.name


def published_dir(profile: Profile, run: RunSpec) -> Path:
    """Where the DAG publishes the weights of `run` that notebooks and the explorer load (apr_lib.layout)."""
    return _published_dir(profile.outputs, run.name)


def metrics_file(profile: Profile, run: RunSpec, suite: str) -> Path:
    return profile.outputs / "metrics" / run.name / f"{suite}.json"


def per_image_file(profile: Profile, run: RunSpec, suite: str) -> Path:
    """The suite's per-image results beside its metrics file (apr_lib.per_image)."""
    return metrics_file(profile, run, suite).with_suffix(".npz")


def method_variants(entry: str, variants: list[str]) -> list[tuple[str, str]]:
    """(method, variant) pairs of one `tables:` methods entry: `<method>` runs with each of the table's `variants`,
    `<method>@<variant>` with that variant alone (for tables whose rows each have their own settings, Table 3)."""
    method, _, variant = entry.partition("@")
    return [(method, variant)] if variant else [(method, v) for v in variants]


def table_seeds(profile: Profile, table: str) -> list[int]:
    """The seeds of a table's runs: its own `seeds`, else the profile's."""
    return profile["tables"][table].get("seeds", profile["seeds"])


def table_runs(profile: Profile, table: str) -> list[RunSpec]:
    """The runs a table of this profile needs: its archs x methods x variants x its seeds."""
    spec = profile["tables"][table]
    return [RunSpec(profile["dataset"], arch, method, seed, variant)
            for arch in spec["archs"] for entry in spec["methods"]
            for method, variant in method_variants(entry, spec.get("variants", [""]))
            for seed in table_seeds(profile, table)]
