"""outputs/<profile>/manifest.json (what produced the outputs, how long it took, and the checksums of the published
weights) and README.md's generated headline.

Wall time comes from Snakemake's benchmark files, runs/<profile>/benchmarks/<rule>[/<job>].tsv, one per job, with
the job's wall seconds (`s`). Snakemake writes a job's file when the job ends, so the file's modification time is
the job's end and end - s its start. The DAG's elapsed wall time is the last end minus the earliest start (jobs run
in parallel, so it is less than the sum of their times); it misses only Snakemake's own start-up before the first
job and this manifest's job. Files of jobs that the current DAG does not have (a renamed rule, a dropped run) are
listed as stale and left out of every total. If the jobs ran in several Snakemake invocations (a resumed or partly
re-run DAG), the elapsed time includes the pauses between them: the manifest lists every stretch of more than
IDLE_GAP_SECONDS with no job running, so a reader can tell.

How the jobs ran (`execution`) comes from the main process of the Snakemake run that wrote the manifest: its executor
and resource settings, read when its jobs start (only then is the executor known) and handed to the manifest's job by
the Snakefile (its `onstart`). Under a cluster executor `cores` is null (each job has its own) and `device` is the
machine of that main process, not of the jobs.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from apr_lib.errors import UserError
from apr_lib.files import read_json, sha256, write_json, write_text
from apr_lib.layout import CONFIG, PROVENANCE, WEIGHTS, corruption_set
from apr_lib.names import config_digest
from apr_lib.paper.index import counted, verdict_parts, verdict_words
from apr_lib.paper.report import DATASET_NAMES, KINDS, describe_setting
from apr_lib.study.config import Profile, published_dir, table_runs
from apr_lib.study.jobs import suite_inputs
from apr_lib.study.sections import SECTIONS, section
from apr_lib.study.targets import claims_table, index_page, published_runs, section_metrics

PACKAGES = ("torch", "torchvision", "snakemake", "papermill", "numpy", "scikit-learn", "pyautoattack",
            "apr-companion")
IDLE_GAP_SECONDS = 60  # longer than any pause Snakemake takes between jobs of one invocation
SINGLE_JOB_RULES = ("data", "claims", "index")  # one job each, always in the DAG (corrupted_testset: see dag_jobs)
README_START, README_END = "<!-- headline:start -->", "<!-- headline:end -->"
PAPER_DATASETS = {"cifar100": "CIFAR-100 (Table 1), CIFAR-10"}  # the paper's datasets beside ours; else CIFAR-10


def manifest_file(profile: Profile) -> Path:
    return profile.outputs / "manifest.json"


def benchmark_dir(profile: Profile) -> Path:
    return Path("runs") / profile.name / "benchmarks"


def read_jobs(folder: Path) -> pd.DataFrame:
    """One row per benchmark file: rule (first path part), job (the rest), wall and CPU seconds, end time."""
    rows = []
    for path in sorted(Path(folder).rglob("*.tsv")):
        parts = path.relative_to(folder).with_suffix("").parts
        record = pd.read_csv(path, sep="\t").iloc[-1]  # the last line if a job was benchmarked repeatedly
        rows.append({"rule": parts[0], "job": "/".join(parts[1:]), "seconds": float(record["s"]),
                     "cpu_seconds": float(record["cpu_time"]), "max_rss_mb": float(record["max_rss"]),
                     "ended": path.stat().st_mtime})
    return pd.DataFrame(rows, columns=["rule", "job", "seconds", "cpu_seconds", "max_rss_mb", "ended"])


def dag_span(jobs: pd.DataFrame) -> float:
    """Seconds from the earliest job start to the last job end."""
    return float(jobs["ended"].max() - (jobs["ended"] - jobs["seconds"]).min())


def idle_gaps(jobs: pd.DataFrame, min_seconds: float = IDLE_GAP_SECONDS) -> list[dict]:
    """Stretches of more than `min_seconds` inside the span when no job was running."""
    gaps, busy_until = [], None
    for start, end in sorted(zip(jobs["ended"] - jobs["seconds"], jobs["ended"])):
        if busy_until is not None and start - busy_until > min_seconds:
            gaps.append({"from": _iso(busy_until), "to": _iso(start), "seconds": round(start - busy_until, 1)})
        busy_until = end if busy_until is None else max(busy_until, end)
    return gaps


def dag_jobs(profile: Profile) -> set[tuple[str, str]]:
    """(rule, job) of every job that `all` may run for `profile`, named as the Snakefile names its benchmark files."""
    jobs = {(rule, "") for rule in SINGLE_JOB_RULES} | {("notebook", s.key) for s in SECTIONS}
    suites = set()
    for s in SECTIONS:
        for path in section_metrics(profile, s):  # outputs/<profile>/metrics/<run>/<suite>.json
            run = path.parent.relative_to(profile.outputs / "metrics").as_posix()
            jobs |= {("train", run), ("evaluate", f"{path.stem}/{run}")}
            suites.add(path.stem)
    # corrupted_testset runs only where a suite reads the generated -C set (not where official files exist).
    if any(corruption_set(profile) / PROVENANCE in suite_inputs(profile, suite) for suite in suites):
        jobs.add(("corrupted_testset", ""))
    return jobs


def execution(workflow) -> dict:
    """What Snakemake's main process knows of where the jobs run: its executor, its `--cores` (local; null under a
    cluster executor), its `--jobs` and its resource settings. Only settings that every executor defines are read
    (`workflow.cores` raises without --cores); resources that Snakemake computes per job (tmpdir, disk_mb) are left
    out."""
    settings = workflow.resource_settings

    def plain(resources) -> dict:
        # Snakemake's Resource objects (plain values in older versions); a function has no value outside a job
        values = {name: getattr(value, "value", value) for name, value in (resources or {}).items()
                  if not name.startswith("_") and not getattr(value, "is_evaluable", lambda: False)()}
        return {name: value for name, value in values.items() if isinstance(value, (bool, int, float, str))}

    return {"executor": workflow.executor_plugin.name, "cores": settings.cores, "jobs": settings.nodes,
            "resources": plain(settings.resources), "default_resources": plain(settings.default_resources),
            "set_resources": {rule: plain(values) for rule, values in settings.overwrite_resources.items()},
            "set_threads": plain(settings.overwrite_threads)}


def git_state() -> dict:
    """The commit of the working directory and whether files outside outputs/ differ from it (null: not a checkout)."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None
    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "note": "not a git checkout"}
    # outputs/ is what the run writes; any other change (untracked code included) means the commit is not the code.
    changed = git("status", "--porcelain", "--", ".", ":(exclude)outputs")
    paths = [line[3:] for line in changed.splitlines()] if changed else []
    return {"commit": commit, "dirty": bool(paths), "changed_paths": paths[:50], "changed_count": len(paths)}


def package_versions() -> dict:
    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None
    return {"python": sys.version.split()[0], **{name: installed(name) for name in PACKAGES}}


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        text = ""
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else (platform.processor() or platform.machine())


def device() -> dict:
    import torch  # only here: the Snakefile imports this module, and torch is slow to import
    return {"platform": platform.platform(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
            "torch_default_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(timestamp))


def wall_time(profile: Profile) -> dict:
    """Per job, per rule and in total, from the benchmark files of the current DAG's jobs."""
    folder = benchmark_dir(profile)
    found = read_jobs(folder)
    expected = dag_jobs(profile)
    in_dag = pd.Series([(r, j) in expected for r, j in zip(found["rule"], found["job"])], dtype=bool)
    jobs, stale = found[in_dag], found[~in_dag]
    if jobs.empty:
        raise UserError(f"no Snakemake benchmark files of this DAG's jobs under {folder}: run "
                                f"`snakemake --cores 4 all --config profile={profile.name}` first")
    per_rule = (jobs.groupby("rule", sort=False)
                .agg(jobs=("job", "size"), seconds=("seconds", "sum"), longest_seconds=("seconds", "max"),
                     cpu_seconds=("cpu_seconds", "sum")).round(2))
    ran = set(zip(jobs["rule"], jobs["job"]))
    return {
        "total_seconds": round(dag_span(jobs), 2),
        "job_seconds": round(float(jobs["seconds"].sum()), 2),
        "first_job_start": _iso((jobs["ended"] - jobs["seconds"]).min()),
        "last_job_end": _iso(jobs["ended"].max()),
        "how": "total_seconds: last job end - earliest job start, from the modification times of Snakemake's "
               f"benchmark files ({folder}) and their wall seconds; job_seconds: the jobs' wall seconds summed "
               "(more than total_seconds when jobs ran in parallel). Not counted: Snakemake's start-up and this "
               "manifest's own job.",
        "idle_gaps": idle_gaps(jobs),
        "per_rule": per_rule.to_dict("index"),
        "jobs": [{"rule": r.rule, "job": r.job, "seconds": r.seconds, "cpu_seconds": r.cpu_seconds,
                  "max_rss_mb": r.max_rss_mb, "started": _iso(r.ended - r.seconds), "ended": _iso(r.ended)}
                 for r in jobs.sort_values("ended").itertuples()],
        # e.g. corrupted_testset where data/ already held the -C set: its time is not in the totals.
        "jobs_without_benchmark": sorted("/".join(filter(None, job)) for job in expected - ran),
        "stale_benchmarks": sorted("/".join(filter(None, (r, j))) for r, j in zip(stale["rule"], stale["job"])),
    }


def published_weights_record(profile: Profile) -> dict:
    """{run: {file: {sha256, bytes}}} of every published run's weights and config (outputs/<profile>/weights/), which
    apr_lib.paper.weights checks before it loads a published copy."""
    record = {}
    for run in published_runs(profile):
        folder = published_dir(profile, run)
        missing = [name for name in (WEIGHTS, CONFIG) if not (folder / name).is_file()]
        if missing:
            raise UserError(f"{folder} lacks {', '.join(missing)}: run `snakemake --cores 4 all --config "
                            f"profile={profile.name}` (its publish_weights rule copies them from runs/)")
        record[run.name] = {name: {"sha256": sha256(folder / name), "bytes": (folder / name).stat().st_size}
                            for name in (WEIGHTS, CONFIG)}
    return record


def write_manifest(profile: Profile, snakemake_run: dict | None) -> dict:
    """`snakemake_run`: execution()'s record, or None where `apr report manifest` ran outside Snakemake."""
    snakemake_run = snakemake_run or {"executor": None, "cores": None, "note": "not written by a Snakemake run"}
    manifest = {
        "profile": {"name": profile.name, "file": str(profile.path), "config_digest": config_digest(profile.cfg),
                    "setting": describe_setting(profile)},
        "git": git_state(),
        "packages": package_versions(),
        "device": device(),
        "cores": snakemake_run["cores"],
        "execution": {key: value for key, value in snakemake_run.items() if key != "cores"},
        "wall_time": wall_time(profile),
        "weights": published_weights_record(profile),
        "written": _iso(time.time()),
    }
    write_json(manifest_file(profile), manifest)
    return manifest


def _rows(path: Path, keep) -> pd.DataFrame:
    """The rows of a table csv that `keep` selects, on its first architecture or its `mean` rows if it has them."""
    df = pd.read_csv(path)
    if "arch" in df:
        df = df[df["arch"] == ("mean" if (df["arch"] == "mean").any() else df["arch"].iloc[0])]
    return df[df["method"].map(keep) & df["ours"].notna()]


def _number(value, digits: int = 1) -> str:
    return "" if pd.isna(value) else f"{value:.{digits}f}"


def _ours(row) -> str:
    """Our number with its 95% interval where the table gives one."""
    interval = f" [{_number(row.ours_low)}, {_number(row.ours_high)}]" if hasattr(row, "ours_low") else ""
    return f"{_number(row.ours)}{interval}"


def _label(table: str, method: str, position: int, measure: str) -> str:
    """A headline row's label: the measure on each table's first row only."""
    return f"{table}, {method}" + (f": {measure}" if position == 0 else "")


def headline_rows(profile: Profile) -> list[tuple[str, str, str]]:
    """(result, ours, paper) of a few of the run's numbers, read from its tables: each main number with its interval
    and the accuracy or clean error beside it."""
    tables = profile.outputs / "tables"
    rows = []
    if (tables / "table1_corruption.csv").exists():
        labels = ("Standard", "APR-P", "APR-S", "APR-SP")
        for i, r in enumerate(_rows(tables / "table1_corruption.csv", lambda m: m in labels).itertuples()):
            rows.append((_label("Table 1", r.method, i, "mean corruption error % (clean error %), lower is better"),
                         f"{_ours(r)} ({_number(r.clean_error)})", _number(r.paper)))
    if (tables / "table2_ood.csv").exists():
        measured = _rows(tables / "table2_ood.csv", lambda m: True)
        shown = pd.concat([measured.iloc[:1], measured[measured["method"].str.endswith("APR-SP")]]).drop_duplicates()
        for i, r in enumerate(shown.itertuples()):
            rows.append((_label("Table 2", r.method, i, "mean OOD AUROC % (test accuracy %), higher is better"),
                         f"{_ours(r)} ({_number(r.test_acc)})", f"{_number(r.paper)} ({_number(r.test_acc_paper)})"))
    if (tables / "table3_adversarial.csv").exists():
        attacks = profile["autoattack"]["attacks"]
        attack = ("standard AutoAttack" if attacks == "standard" else
                  f"{', '.join(a.upper() for a in attacks)} (reduced AutoAttack; the paper: standard)")
        measured = _rows(tables / "table3_adversarial.csv", lambda m: m in ("FGSM", "FGSM w/ APR-SP"))
        for i, r in enumerate(measured[measured["images"] == measured["images"].iloc[0]].itertuples()):
            rows.append((_label("Table 3", r.method, i, f"accuracy % under {attack} (clean accuracy %), {r.images} "
                                "test images, higher is better"),
                         f"{_ours(r)} ({_number(r.clean)})", f"{_number(r.paper)} ({_number(r.clean_paper)})"))
    if not rows:
        raise UserError(f"no tables under {tables}: run `snakemake --cores 4 all --config profile={profile.name}` "
                        "first")
    return rows


def headline(profile: Profile) -> str:
    """The README block: a few of the run's numbers beside the paper's, the count of the paper's claims by verdict,
    figures and links, all read from outputs/<profile>/ (nothing typed)."""
    out = profile.outputs
    dataset = DATASET_NAMES.get(profile["dataset"], profile["dataset"])
    table = [f"| result | ours, {dataset} | paper, {PAPER_DATASETS.get(profile['dataset'], 'CIFAR-10')} |",
             "| --- | ---: | ---: |"]
    table += [f"| {what} | {ours} | {paper} |" for what, ours, paper in headline_rows(profile)]
    claims = pd.read_csv(claims_table(profile)[0], keep_default_na=False)
    papers = counted(claims)
    verdicts = papers["verdict"].value_counts()
    others = ", ".join(f"{KINDS[kind]} ({(claims['kind'] == kind).sum()})" for kind in KINDS
                       if kind != "paper" and (claims["kind"] == kind).any())
    manifest = read_json(manifest_file(profile)) if manifest_file(profile).exists() else None
    archs = ", ".join(dict.fromkeys(run.arch for run in table_runs(profile, "table1_corruption")))
    label = [dataset, archs, f"{profile['train']['epochs']} epochs"]
    if manifest and manifest["cores"]:  # a local run: the manifest's device ran the jobs
        label.append("GPU" if manifest["device"]["cuda"] else "CPU")
    rest = [part for verdict, part in verdict_parts(papers) if verdict != "holds"]
    lines = [README_START,
             f"<!-- written by `apr report readme --profile {profile.name}` from {out}/: edit that, not this -->",
             f"**Headline results: {', '.join(label)} ({profile.name} profile).** {describe_setting(profile)} Ours: "
             "means over seeds, [95% interval] over seeds and test images; the paper's: its own datasets and models at "
             "full scale (`params/paper_results.yaml`).", "", *table, "",
             f"**{verdicts.get('holds', 0)} of the paper's {len(papers)} claims "
             f"{verdict_words('holds', verdicts.get('holds', 0))}**"
             + "".join(f", {part}" for part in rest)
             + f", each verdict read from a 95% interval ([all claims]({claims_table(profile)[1]})"
             + (f"; kept apart and not counted: {others}" if others else "") + "). "
             f"Every table and figure, ours beside the paper's: [{index_page(profile)}]({index_page(profile)})."]
    if manifest:
        wall = manifest["wall_time"]
        idle = sum(gap["seconds"] for gap in wall["idle_gaps"])
        lines[-1] += (f" The whole run took {wall['total_seconds'] / 60:.1f} min of wall time{_how_run(manifest)}"
                      + (f", {idle / 60:.1f} min of it with no job running, between Snakemake invocations" if idle else "")
                      + f" ([manifest]({manifest_file(profile)})).")
    for key in ("fig2_amplitude_swap", "fig7_apr_examples"):
        figure = out / "figures" / f"{section(key).figures[0]}.png"
        if figure.exists():
            lines += ["", f"![{section(key).paper}: {section(key).title}]({figure})"]
            caption = figure.with_suffix(".md")  # its first line: what the figure finds (the rest: the index)
            if caption.exists():
                finding = caption.read_text(encoding="utf-8").splitlines()[0]
                lines += ["", f"*{finding}*"]
    lines += ["", "At the paper's scale: `--config profile=cifar` on a GPU with CIFAR-10 in place "
              "([docs/profiles.md](docs/profiles.md)).", README_END]
    return "\n".join(lines)


def _how_run(manifest: dict) -> str:
    """How the jobs ran, for the headline: on which machine with how many cores (local executor), or through which
    cluster executor (whose jobs ran on other machines than the manifest's `device`)."""
    if manifest["cores"]:
        device = manifest["device"]
        machine = device["cuda"] or f"{device['cpu_count']} CPU cores ({device['cpu']})"
        return f" with `--cores {manifest['cores']}` on {machine}"
    executor = manifest["execution"]["executor"]
    return f" through Snakemake's `{executor}` executor" if executor else ""


def update_readme(readme: Path, block: str) -> bool:
    """Put `block` between README's headline markers; True if the file changed."""
    text = readme.read_text(encoding="utf-8")
    if text.count(README_START) != 1 or text.count(README_END) != 1:
        raise UserError(f"{readme} needs exactly one {README_START} line and one {README_END} line where the "
                         "headline goes; add them (once each) and run the command again")
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    new = text[:start] + block + text[end:]
    if new != text:
        write_text(readme, new)
    return new != text


def readme_block(readme: Path) -> str:
    text = readme.read_text(encoding="utf-8")
    return text[text.index(README_START):text.index(README_END) + len(README_END)]
