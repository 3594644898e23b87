"""The `apr` command line: the jobs of the Snakemake DAG, runnable by hand.

    apr list methods|archs|datasets|corruptions
    apr check --profile P                       validate a profile
    apr data prepare --profile P                find or fetch the dataset, record where it came from
    apr data corrupt --profile P                generate the -C test set (unless official files exist)
    apr train --profile P --run R [--restart]   train one run (resumes from its checkpoint)
    apr eval --profile P --run R --suite S      evaluate one run (suites: apr_lib.evaluate.SUITES)
    apr report claims|index --profile P         merge the claim checks / write the index page
    apr report manifest --profile P             write outputs/P/manifest.json (commit, versions, device, wall time)
    apr report readme --profile P               fill README.md's headline block from outputs/P/
    apr strip-notebooks PATH...                 clear outputs of source notebooks except nbval-checked cells

User errors (bad profile, missing data, broken checkpoint) print one message and exit with status 2.

The entry point sits above every layer (core apr_lib, apr_lib.study, apr_lib.paper). Each command imports what it
needs inside its function: `apr list`, `apr check` and `apr report` then start without torch.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from apr_lib import names
from apr_lib.errors import UserError

REGISTRIES = {"methods": names.METHODS, "archs": names.ARCHS, "datasets": names.DATASETS,
              "corruptions": names.CORRUPTIONS}


def cmd_list(args) -> None:
    print("\n".join(REGISTRIES[args.what]))


def cmd_check(args) -> None:
    from apr_lib.study.config import check_data_root, load_profile, table_runs
    profile = load_profile(args.profile)
    check_data_root(profile)
    runs = {r for table in profile["tables"] for r in table_runs(profile, table)}
    print(f"{profile.path}: valid profile {profile.name!r} ({profile['description']}); {len(runs)} training runs")


# glibc's mallopt parameters: M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _keep_freed_memory() -> None:
    """Let glibc keep freed memory for the next batch instead of returning it to the system.

    By default a tensor over 32 MB (one batch of 500 images through a conv layer) gets fresh pages from the kernel
    and gives them back when freed, so every batch pays page faults: a corruption evaluation spent 5.7 of its 15 s
    in the kernel (2-core AMD EPYC, one thread), and 0.4 of 9.5 s with both thresholds at 1 GiB; AugMix's training
    took 97 s instead of 118. Memory then stays at the job's peak until it exits. No effect off glibc (macOS,
    Windows, musl), where the call is absent or refused."""
    import ctypes
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    for parameter in (_M_MMAP_THRESHOLD, _M_TRIM_THRESHOLD):
        mallopt(parameter, 1 << 30)


def _prepare_compute(threads: int | None) -> None:
    import torch  # only the commands that run a model need it
    if threads:
        torch.set_num_threads(threads)
    _keep_freed_memory()


def cmd_data(args) -> None:
    from apr_lib import corrupted_sets
    from apr_lib.data import ensure_dataset, load_split, subset_indices
    from apr_lib.files import write_json
    from apr_lib.layout import generated_dir, official_dir
    from apr_lib.study.config import load_profile

    profile = load_profile(args.profile)
    dataset, root = profile["dataset"], Path(profile["data_root"])
    if args.action == "prepare":
        provenance = ensure_dataset(dataset, root)
        write_json(profile.outputs / "metrics" / "data" / f"{dataset}.json", provenance)
        print(f"{dataset}: {provenance['source']}")
        return
    official = official_dir(dataset, root)
    if official is not None:
        print(f"{dataset}: using the official -C files in {official}")
        return
    subset = profile["eval"].get("corruption_subset")
    test = load_split(dataset, root, train=False)
    keep = subset_indices(len(test.labels), subset)
    out_dir = generated_dir(dataset, root, subset)
    corrupted_sets.generate_c_set(test.images[keep], test.labels[keep], profile["eval"]["corruptions"], out_dir,
                                  source=f"{dataset} test set, {len(keep)} images")
    print(f"{dataset}: -C set with {len(profile['eval']['corruptions'])} corruptions in {out_dir}")


def cmd_train(args) -> None:
    from apr_lib.study.config import RunSpec, load_profile, metrics_file, run_config, run_dir
    from apr_lib.train import train_run

    profile = load_profile(args.profile)
    run = RunSpec.parse(args.run)
    _prepare_compute(args.threads)
    metrics = train_run(run_config(profile, run), run_dir(profile, run), metrics_file(profile, run, "train"),
                        restart=args.restart)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one summary from process 0
        print(f"{run.name}: trained {metrics['epochs']} epochs in {metrics['train_seconds']:.0f} s, "
              f"final loss {metrics['final_loss']:.4f}")


def cmd_eval(args) -> None:
    from apr_lib import per_image
    from apr_lib.evaluate import SUITES
    from apr_lib.files import write_json
    from apr_lib.runs import load_run
    from apr_lib.study.config import RunSpec, load_profile, metrics_file, per_image_file, run_dir

    profile = load_profile(args.profile)
    run = RunSpec.parse(args.run)
    _prepare_compute(args.threads)
    model, _ = load_run(run_dir(profile, run))
    result, images, summary = SUITES[args.suite](profile.cfg, model)
    per_image.save(per_image_file(profile, run, args.suite), images)
    write_json(metrics_file(profile, run, args.suite), {"run": run.name, "suite": args.suite, **result})
    print(f"{run.name}: {args.suite}: {summary}")


def cmd_report(args) -> None:
    from apr_lib.paper.index import count_sentence, counted, merge_claims, write_index
    from apr_lib.study.config import load_profile

    profile = load_profile(args.profile)
    if args.what in ("manifest", "readme"):
        return report_run(profile, args)
    if args.what == "claims":
        df = merge_claims(profile)
        print(f"the paper's claims: {count_sentence(counted(df))} ({len(df)} checks in all)")
    else:
        write_index(profile)
        print(f"wrote {profile.outputs / 'index.md'}")


def report_run(profile, args) -> None:
    from apr_lib.paper import manifest

    if args.what == "manifest":
        written = manifest.write_manifest(profile, _execution(args.execution))
        wall = written["wall_time"]
        print(f"wrote {manifest.manifest_file(profile)}: {len(wall['jobs'])} jobs, {wall['total_seconds'] / 60:.1f} "
              f"min of wall time ({wall['job_seconds'] / 60:.1f} min of job time) through Snakemake's "
              f"{written['execution']['executor']} executor")
        return
    changed = manifest.update_readme(Path("README.md"), manifest.headline(profile))
    print(f"README.md headline {'updated' if changed else 'already up to date'} from {profile.outputs}")


def _execution(text: str | None) -> dict | None:
    """--execution: the JSON the Snakefile passes (apr_lib.paper.manifest.execution); absent or empty outside Snakemake."""
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"--execution {text!r} is not JSON ({e}); it is the Snakefile's record of the run "
                        "(apr_lib.paper.manifest.execution): leave it out when running `apr report manifest` by hand")


def cmd_strip_notebooks(args) -> None:
    from apr_lib.paper.notebook_outputs import strip_unchecked_outputs
    for path in args.paths:
        if strip_unchecked_outputs(path):
            print(f"stripped {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apr", description="APR companion: data, training, evaluation and reports "
                                     "for Amplitude-Phase Recombination (Chen et al., ICCV 2021).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="print registered names")
    p.add_argument("what", choices=["methods", "archs", "datasets", "corruptions"])
    p.set_defaults(func=cmd_list)

    def with_profile(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--profile", default="default", help="profile name (params/<name>.yaml) or path (default: default)")
        return p

    p = with_profile(sub.add_parser("check", help="validate a profile"))
    p.set_defaults(func=cmd_check)

    p = with_profile(sub.add_parser("data", help="prepare the dataset or its -C test set"))
    p.add_argument("action", choices=["prepare", "corrupt"])
    p.set_defaults(func=cmd_data)

    for name, func, help_text in (("train", cmd_train, "train one run"), ("eval", cmd_eval, "evaluate one run")):
        p = with_profile(sub.add_parser(name, help=help_text))
        p.add_argument("--run", required=True, help="<dataset>/<arch>/<method>/seed<k>, e.g. fmnist/small_cnn/apr_sp/seed0")
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
        p.set_defaults(func=func)
    sub.choices["train"].add_argument("--restart", action="store_true", help="ignore the checkpoint, train from epoch 0")
    sub.choices["eval"].add_argument("--suite", required=True, choices=list(names.SUITES))

    p = with_profile(sub.add_parser("report", help="merge claim checks or write the index page"))
    p.add_argument("what", choices=["claims", "index", "manifest", "readme"])
    p.add_argument("--execution", default=None, help="manifest: the executor and resource settings of the Snakemake "
                   "run, as JSON (the Snakefile passes it)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("strip-notebooks", help="clear outputs of source notebooks except nbval-checked cells")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=cmd_strip_notebooks)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("train", "eval"):
            from apr_lib.gpu_slots import claim_gpu_from_env
            claim_gpu_from_env()  # one GPU per job under `--resources gpu=N` (profiles/gpu-local)
        args.func(args)
    except UserError as e:
        print(f"apr: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
