# The DAG: data -> train one run -> evaluate it -> section notebooks -> claims -> index -> manifest; the weights the
# notebooks load are published to outputs/<profile>/weights/ on the way (committed for the default profile).
#
#   snakemake --cores 4 all                          # the default profile (params/default.yaml)
#   snakemake --cores 4 all --config profile=tiny    # any profile under params/, or a path to one
#
# The profile is validated while this file is parsed, so a bad profile fails before any job runs.
# Target lists, run names and paths come from apr_lib's study layer, which imports no torch, so parsing this file
# stays light (tested by pytest); the rules only wire them up.

import json
import os

from apr_lib.files import copy_file
from apr_lib.gpu_slots import JOBS_PER_GPU_VARIABLE, SLOTS_VARIABLE as GPU_SLOTS_VARIABLE, gpu_slot_count
from apr_lib.layout import CONFIG, PROVENANCE, WEIGHTS, corruption_set
from apr_lib.names import SUITES, config_digest
from apr_lib.paper.manifest import execution, manifest_file
from apr_lib.progress import VARIABLE as PROGRESS_VARIABLE
from apr_lib.study.config import RUN_PATTERN, RunSpec, check_data_root, load_profile, run_config
from apr_lib.study.jobs import launcher, suite_inputs
from apr_lib.study.targets import (claims_table, executed_notebook, index_page, profile_sections, published_weights,
                                   section_metrics, section_outputs, section_products, section_weights)

PROFILE = load_profile(str(config.get("profile", "default")))
check_data_root(PROFILE)
# Several GPUs on one machine (profiles/gpu-local): with `--resources gpu=N jobs_per_gpu=J` each train/evaluate job
# claims one of N x J slots on the N devices itself (apr_lib.gpu_slots), since Snakemake sets no CUDA_VISIBLE_DEVICES
# (SLURM does, per job); Snakemake then runs N x J such jobs at once.
GPUS = JOBS_PER_GPU = None
if "gpu" in workflow.global_resources and workflow.is_main_process:
    GPUS, JOBS_PER_GPU = (workflow.global_resources.get(name).value for name in ("gpu", "jobs_per_gpu"))
    JOBS_PER_GPU = 1 if JOBS_PER_GPU is None else JOBS_PER_GPU
    workflow.register_resource("gpu", gpu_slot_count(GPUS, JOBS_PER_GPU))

P = PROFILE.name
OUT = f"outputs/{P}"
BENCH = f"runs/{P}/benchmarks"  # wall time and memory of every job (Snakemake's benchmark files)
DATA = f"{OUT}/metrics/data/{PROFILE['dataset']}.json"
# data/ is never committed but DATA (the record in outputs/) is: jobs that read the data need this marker beside it,
# so a fresh clone fetches the data
DATA_READY = f"{PROFILE['data_root']}/.{PROFILE['dataset']}.ready"
C_SET = corruption_set(PROFILE.cfg)
SECTIONS = profile_sections(PROFILE)  # the profile's `sections`, else every section of the paper


# In the main Snakemake process when the jobs start (only then is the executor known); the jobs inherit its environment
# (local jobs directly, SLURM jobs through `sbatch --export=ALL`). Nothing in a job's shell command may read the main
# process's settings (`workflow.cores` is undefined under a cluster executor): they come through here.
onstart:
    os.environ["APR_EXECUTION"] = json.dumps(execution(workflow))  # for the manifest
    # The GPU slots above, for local jobs only: SLURM gives each job its own GPUs.
    if workflow.local_exec and GPUS is not None:
        os.environ.update({GPU_SLOTS_VARIABLE: str(GPUS), JOBS_PER_GPU_VARIABLE: str(JOBS_PER_GPU)})


wildcard_constraints:
    run=RUN_PATTERN,
    suite="|".join(SUITES),

localrules:
    publish_weights,


rule all:
    input:
        [path for s in SECTIONS for path in section_outputs(PROFILE, s)],
        published_weights(PROFILE),
        claims_table(PROFILE),
        index_page(PROFILE),
        manifest_file(PROFILE),


rule data:
    output:
        DATA,
        touch(DATA_READY),
    benchmark:
        f"{BENCH}/data.tsv"
    shell:
        "apr data prepare --profile {PROFILE.path}"


rule corrupted_testset:
    input:
        DATA_READY,
    output:
        f"{C_SET}/{PROVENANCE}",
    benchmark:
        f"{BENCH}/corrupted_testset.tsv"
    shell:
        "apr data corrupt --profile {PROFILE.path}"


rule train:
    input:
        DATA_READY,
    output:
        weights=f"runs/{P}/{{run}}/model.pt",
        metrics=f"{OUT}/metrics/{{run}}/train.json",
    params:
        # A change of the profile keys this run reads re-triggers it (Snakemake's params trigger).
        config_digest=lambda wc: config_digest(run_config(PROFILE, RunSpec.parse(wc.run))),
    benchmark:
        f"{BENCH}/train/{{run}}.tsv"
    threads: 1
    shell:
        # `apr`, or torchrun starting train.nproc_per_node processes (apr_lib.study.jobs.launcher)
        f"{launcher(PROFILE)} train --profile {{PROFILE.path}} --run {{wildcards.run}} --threads {{threads}}"


# The weights the notebooks and the explorer load, copied where git keeps them (apr_lib.paper.weights): notebooks
# read this copy as their input, so a fresh clone runs them by hand on the committed files, while `all` trains and
# publishes again (a missing runs/ file re-runs train, which re-runs this copy).
rule publish_weights:
    input:
        weights=f"runs/{P}/{{run}}/{WEIGHTS}",
    output:
        weights=f"{OUT}/weights/{{run}}/{WEIGHTS}",
        config=f"{OUT}/weights/{{run}}/{CONFIG}",
    run:
        copy_file(input.weights, output.weights)
        copy_file(os.path.join(os.path.dirname(input.weights), CONFIG), output.config)


rule evaluate:
    input:
        f"runs/{P}/{{run}}/model.pt",
        lambda wc: suite_inputs(PROFILE, wc.suite),
    output:
        f"{OUT}/metrics/{{run}}/{{suite}}.json",
        f"{OUT}/metrics/{{run}}/{{suite}}.npz",  # per image (apr_lib.per_image): the claims' intervals resample it
    benchmark:
        f"{BENCH}/evaluate/{{suite}}/{{run}}.tsv"
    threads: 1
    shell:
        "apr eval --profile {PROFILE.path} --run {wildcards.run} --suite {wildcards.suite} --threads {threads}"


for s in SECTIONS:

    rule:
        name:
            f"notebook_{s.key}"
        input:
            notebook=f"notebooks/{s.notebook}.ipynb",
            metrics=section_metrics(PROFILE, s),
            weights=section_weights(PROFILE, s),
            data=DATA_READY,
        output:
            executed=executed_notebook(PROFILE, s),
            products=section_products(PROFILE, s),
        benchmark:
            f"{BENCH}/notebook/{s.key}.tsv"
        threads: 1
        shell:
            # OMP_NUM_THREADS: torch in the kernel would take every core, and threads spin when jobs share them;
            # plain-text progress in the executed copy (apr_lib.progress); write_reference: the reference outputs,
            # not the scratch folder a notebook run by hand writes to
            f"OMP_NUM_THREADS={{threads}} {PROGRESS_VARIABLE}=lines papermill --log-level WARNING {{input.notebook}} "
            "{output.executed} -p profile {PROFILE.path} -p write_reference True"


rule claims:
    input:
        [f"{OUT}/claims/{s.key}.csv" for s in SECTIONS],
    output:
        claims_table(PROFILE),
    benchmark:
        f"{BENCH}/claims.tsv"
    shell:
        "apr report claims --profile {PROFILE.path}"


rule index:
    input:
        [path for s in SECTIONS for path in section_outputs(PROFILE, s)],
        claims_table(PROFILE),
    output:
        index_page(PROFILE),
    benchmark:
        f"{BENCH}/index.tsv"
    shell:
        "apr report index --profile {PROFILE.path}"


# Last: the commit, versions, device, executor and wall time (from every job's benchmark file) of what `all` produced,
# and the checksums of the published weights. Local under every executor, as the weights' copies are: the manifest
# needs the main process's environment (onstart) and git, and both take seconds.
localrules:
    manifest,
    publish_weights,
rule manifest:
    input:
        [path for s in SECTIONS for path in section_outputs(PROFILE, s)],
        published_weights(PROFILE),
        claims_table(PROFILE),
        index_page(PROFILE),
    output:
        manifest_file(PROFILE),
    shell:
        # APR_EXECUTION: from onstart (empty where it did not run, as under --no-hooks)
        'apr report manifest --profile {PROFILE.path} --execution "${{APR_EXECUTION:-}}"'
