"""The run's overview: every section's claims merged into tables/claims.{csv,md}, and the index page index.md."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from apr_lib.files import write_text
from apr_lib.paper.report import CLAIM_COLUMNS, KINDS, VERDICT_RULE, VERDICTS, describe_setting
from apr_lib.study.config import Profile
from apr_lib.study.targets import claims_table, index_page, profile_sections


def merge_claims(profile: Profile) -> pd.DataFrame:
    """tables/claims.{csv,md}: every section's claims, in the paper's order, with the counts by kind."""
    frames = []
    for s in profile_sections(profile):
        path = profile.outputs / "claims" / f"{s.key}.csv"
        frames.append(pd.read_csv(path, keep_default_na=False).assign(section=s.key))
    df = pd.concat(frames, ignore_index=True)[["section"] + CLAIM_COLUMNS]
    problems = ledger_problems(df)
    if problems:
        raise ValueError("the claims break the ledger's rules:\n  - " + "\n  - ".join(problems))
    csv_path, md_path = claims_table(profile)
    write_text(csv_path, df.to_csv(index=False))
    by_kind = "\n".join(f"- {KINDS[kind]}: {count_sentence(df[df['kind'] == kind])}" for kind in KINDS
                        if (df["kind"] == kind).any())
    write_text(md_path, f"Claims checked by this run. {describe_setting(profile)}\n\n{by_kind}\n\n{VERDICT_RULE} "
               "Only the paper's claims are counted in the headline; a claim re-measured on the runs of another "
               "(`counted`: no) is counted there.\n\n"
               f"{markdown(df)}\n")
    return df


def ledger_problems(df: pd.DataFrame) -> list[str]:
    """What breaks the rules every ledger of claims keeps: a verdict among VERDICTS and a kind among KINDS; a "holds"
    or "fails" only with an interval that excludes 0; one verdict per claim text."""
    problems = [f"{row.section}: {row.claim!r}: unknown verdict {row.verdict!r} or kind {row.kind!r}"
                for row in df.itertuples() if row.verdict not in VERDICTS or row.kind not in KINDS]
    for row in df[df["verdict"].isin(["holds", "fails"])].itertuples():
        low, high = pd.to_numeric(pd.Series([row.low, row.high]), errors="coerce")
        if pd.isna(low) or pd.isna(high) or low <= 0 <= high:
            problems.append(f"{row.section}: {row.claim!r} {row.verdict} on the interval [{row.low}, {row.high}], "
                            "which does not exclude 0")
    verdicts = df.groupby("claim")["verdict"].nunique()
    problems += [f"{claim!r} has {n} verdicts: one claim text, one verdict" for claim, n in verdicts.items() if n > 1]
    return problems


def counted(df: pd.DataFrame) -> pd.DataFrame:
    """The claims counted: the paper's own, each once (not the re-measurements of another claim's runs)."""
    return df[(df["kind"] == "paper") & (df["counted"] == "yes")]


# each verdict said of one claim and of several
VERDICT_WORDS = {"holds": ("holds", "hold"), "fails": ("fails", "fail"),
                 "inconclusive": ("is inconclusive", "are inconclusive"),
                 "not comparable": ("is not comparable", "are not comparable"), "not run": ("was not run", "were not run")}


def verdict_words(verdict: str, count: int) -> str:
    """"holds" for one claim, "hold" for several (and so on for every verdict)."""
    singular, plural = VERDICT_WORDS[verdict]
    return singular if count == 1 else plural


def verdict_parts(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(verdict, "N hold" / "1 is inconclusive" / ...) for each verdict among the claims of `df`, in VERDICTS' order."""
    counts = df["verdict"].value_counts()
    return [(v, f"{counts[v]} {verdict_words(v, counts[v])}") for v in VERDICTS if counts.get(v, 0)]


def count_sentence(df: pd.DataFrame) -> str:
    """"M claims: N hold, K are inconclusive, ..." over the claims of `df`."""
    parts = [part for _, part in verdict_parts(df)]
    return f"{len(df)} claim{'s' if len(df) != 1 else ''}: " + (", ".join(parts) if parts else "none")


MAX_INLINE_ROWS = 25  # longer tables are linked, not shown on the page
SUMMARY_LEFT_OUT = ("section", "source", "note")  # claim columns the page leaves to tables/claims.md


def escape_pipes(text: str) -> str:
    return text.replace("|", "\\|")  # a | inside a cell (|x|, a norm) would end the cell


def markdown(df: pd.DataFrame) -> str:
    return df.map(lambda v: escape_pipes(v) if isinstance(v, str) else v).to_markdown(index=False)


def anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def headline_claim(claims: pd.DataFrame) -> pd.Series:
    """The claim a section's summary row shows: its first claim of the paper's own, else its first."""
    papers = claims[claims["kind"] == "paper"]
    return (papers if len(papers) else claims).iloc[0]


def heading(s) -> str:
    return f"{s.paper}: {s.title}"


def summary_rows(profile: Profile, claims: pd.DataFrame) -> list[str]:
    """One row per section: a link to it, its headline claim's measure with ours and the paper's number, and how many
    of its claims hold, fail, ...; then the count over every claim."""
    rows = ["| section | measured (the section's first claim of the paper) | ours | paper | verdicts |",
            "| --- | --- | --- | --- | --- |"]
    for s in profile_sections(profile):
        own = claims[claims["section"] == s.key]
        label = f"[{s.paper.split(' (')[0]}: {s.title}](#{anchor(heading(s))})"
        if own.empty:
            rows.append(f"| {label} | | | | no claims |")
            continue
        first = headline_claim(own)
        cells = [escape_pipes(str(first[c])) for c in ("measure", "ours", "paper")]
        rows.append(f"| {label} | {' | '.join(cells)} | {', '.join(part for _, part in verdict_parts(own))} |")
    claims_md = os.path.relpath(claims_table(profile)[1], profile.outputs)
    return rows + ["", f"The paper's claims, each counted once: **{count_sentence(counted(claims))}**; every claim "
                       f"checked, with this project's own and the released code's: [all claims]({claims_md})."]


def table_block(out: Path, table: str) -> list[str]:
    """A table as the page shows it: caption and rows, or caption and links where it is long."""
    files = f"[csv](tables/{table}.csv), [md](tables/{table}.md), [tex](tables/{table}.tex)"
    rows = len(pd.read_csv(out / "tables" / f"{table}.csv"))
    if rows <= MAX_INLINE_ROWS:
        return [(out / "tables" / f"{table}.md").read_text(encoding="utf-8").strip(), "", f"Files: {files}", ""]
    caption = (out / "tables" / f"{table}.md").read_text(encoding="utf-8").split("\n\n")[0]
    return [caption, "", f"{rows} rows, not shown here: {files}", ""]


def write_index(profile: Profile) -> str:
    """index.md: a summary of every section (ours vs the paper's, verdicts), contents, then every table and figure in
    the paper's order, ours beside the paper's, with each figure's caption and the claims."""
    out = profile.outputs
    sections = profile_sections(profile)
    claims = pd.read_csv(claims_table(profile)[0], keep_default_na=False)
    lines = [f"# APR companion: results of profile `{profile.name}`", "",
             describe_setting(profile) + " Each section states its own budget below. Every number comes from a run "
             "of this profile; the paper's numbers come from `params/paper_results.yaml`. Regenerate with "
             "`snakemake --cores 4 all" + ("" if profile.name == "default" else f" --config profile={profile.name}")
             + "`.", "", "## Summary", "", *summary_rows(profile, claims), "", "## Contents", ""]
    lines += [f"{n}. [{heading(s)}](#{anchor(heading(s))})" for n, s in enumerate(sections, start=1)]
    lines += ["", "Then: [All claims](#all-claims), [How this run was made](#how-this-run-was-made).", ""]
    for s in sections:
        lines += [f"## {heading(s)}", "", s.summary, ""]
        for figure in s.figures:
            caption = " ".join((out / "figures" / f"{figure}.md").read_text(encoding="utf-8").split())
            lines += [f"![{s.paper}: {s.title}](figures/{figure}.png)", "", f"*{caption}*", "",
                      f"Files: [png](figures/{figure}.png), [pdf](figures/{figure}.pdf), "
                      f"[caption](figures/{figure}.md)", ""]
        for table in s.tables:
            lines += table_block(out, table)
        own = claims[claims["section"] == s.key]
        if len(own):
            shown = [c for c in own.columns if c not in SUMMARY_LEFT_OUT]
            lines += ["Claims checked (difference and 95% interval over seeds and test images; "
                      "[how verdicts are given](tables/claims.md)):", "", markdown(own[shown]), ""]
        lines += [f"Notebook: [notebooks/{s.notebook}.ipynb](notebooks/{s.notebook}.ipynb); "
                  f"claim checks: [claims/{s.key}.csv](claims/{s.key}.csv)", ""]
    claims_csv, claims_md = (os.path.relpath(path, out) for path in claims_table(profile))
    lines += ["## All claims", "", f"See [{claims_md}]({claims_md}) ([csv]({claims_csv})).", "",
              "## How this run was made", "",
              "The commit, profile, package versions, device, cores and wall time per job, per rule and in total, and "
              "the checksums of the published weights (`weights/`, which the notebooks and the explorer load where "
              "runs/ does not hold the runs): [manifest.json](manifest.json), written by the DAG's last rule, after "
              "this page.", ""]
    text = "\n".join(lines)
    write_text(index_page(profile), text)
    return text
