"""Progress bars: tqdm's for a person watching; plain lines, without carriage returns, where the output is kept (the
DAG's executed notebooks: APR_PROGRESS=lines)."""
from tqdm import auto, std

from apr_lib import progress


def test_a_watched_run_gets_tqdm_auto(monkeypatch):
    monkeypatch.delenv(progress.VARIABLE, raising=False)
    bar = progress.tqdm(range(3), disable=True)
    assert type(bar) is auto.tqdm


def test_a_kept_run_gets_plain_lines_from_long_loops_only(monkeypatch, capsys):
    monkeypatch.setenv(progress.VARIABLE, "lines")
    assert list(progress.tqdm(range(5), desc="short", disable=None)) == list(range(5))
    assert capsys.readouterr().err == ""  # shorter than LINE_SECONDS: nothing kept

    monkeypatch.setattr(progress, "LINE_SECONDS", 0)
    bar = progress.tqdm(range(5), desc="long", disable=None)  # disable=None would hide it off a terminal
    assert isinstance(bar, std.tqdm) and list(bar) == list(range(5))
    lines = capsys.readouterr().err
    assert "\r" not in lines and lines.endswith("\n")
    assert lines.splitlines()[-1].startswith("long: 100%|##########| 5/5")
