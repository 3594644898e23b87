"""The run's overview: every section's claims merged into tables/claims.{csv,md}, and the index page index.md."""
from __future__ import annotations

import os

import pandas as pd

from apr_lib.files import write_text
from apr_lib.paper.report import CLAIM_COLUMNS, VERDICTS, describe_setting
from apr_lib.study.config import Profile
from apr_lib.study.targets import claims_table, index_page, profile_sections


def merge_claims(profile: Profile) -> pd.DataFrame:
    """tables/claims.{csv,md}: every section's claims, in the paper's order."""
    frames = []
    for s in profile_sections(profile):
        path = profile.outputs / "claims" / f"{s.key}.csv"
        frames.append(pd.read_csv(path, keep_default_na=False).assign(section=s.key))
    df = pd.concat(frames, ignore_index=True)[["section"] + CLAIM_COLUMNS]
    csv_path, md_path = claims_table(profile)
    write_text(csv_path, df.to_csv(index=False))
    counts = df["verdict"].value_counts()
    summary = ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)
    write_text(md_path, f"Claims of the paper checked by this run ({summary}). {describe_setting(profile)}\n\n"
               f"{df.to_markdown(index=False)}\n")
    return df


def write_index(profile: Profile) -> str:
    """index.md: every table and figure in the paper's order, ours beside the paper's, with the claims."""
    out = profile.outputs
    lines = [f"# APR companion: results of profile `{profile.name}`", "",
             describe_setting(profile), "",
             "Every number below comes from a run of this profile; the paper's numbers come from "
             "`params/paper_results.yaml`. Regenerate with `snakemake --cores 4 all"
             + ("" if profile.name == "default" else f" --config profile={profile.name}") + "`.", ""]
    for s in profile_sections(profile):
        lines += [f"## {s.paper}: {s.title}", "", s.summary, ""]
        for table in s.tables:
            lines += [(out / "tables" / f"{table}.md").read_text(encoding="utf-8").strip(), "",
                      f"Files: [csv](tables/{table}.csv), [md](tables/{table}.md), [tex](tables/{table}.tex)", ""]
        for figure in s.figures:
            lines += [f"![{s.paper}](figures/{figure}.png)", "",
                      f"Files: [png](figures/{figure}.png), [pdf](figures/{figure}.pdf)", ""]
        claims = pd.read_csv(out / "claims" / f"{s.key}.csv", keep_default_na=False)
        if len(claims):
            lines += ["Claims checked:", "",
                      claims[["claim", "measure", "ours", "paper", "verdict"]].to_markdown(index=False), ""]
        lines += [f"Notebook: [notebooks/{s.notebook}.ipynb](notebooks/{s.notebook}.ipynb); "
                  f"claim checks: [claims/{s.key}.csv](claims/{s.key}.csv)", ""]
    claims_csv, claims_md = (os.path.relpath(path, out) for path in claims_table(profile))
    lines += ["## All claims", "", f"See [{claims_md}]({claims_md}) ([csv]({claims_csv})).", "",
              "## How this run was made", "",
              "The commit, profile, package versions, device, cores and wall time per job, per rule and in total: "
              "[manifest.json](manifest.json), written by the DAG's last rule, after this page.", ""]
    text = "\n".join(lines)
    write_text(index_page(profile), text)
    return text
