"""Publication figures (extra 'plot'): real files, real content."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report_support import emit_call

import otm
from otm.cli import main

pytest.importorskip("matplotlib")


@pytest.fixture()
def log(tmp_path: Path) -> Path:
    with otm.experiment("figures", output_dir=tmp_path / "runs", reports=()) as exp:
        for i in range(30):
            emit_call(i, model=("gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash")[i % 3], output_tokens=20 + i)
    assert exp.log_path is not None
    return exp.log_path


def test_save_figures_writes_every_figure_in_every_format(log: Path, tmp_path: Path) -> None:
    from otm.report import summarize
    from otm.report.figures import FIGURES, save_figures

    summary = summarize(otm.report.read_log(log))
    paths = save_figures(summary, tmp_path / "fig", formats=("png", "pdf"))
    assert len(paths) == 2 * len(FIGURES)
    for p in paths:
        data = p.read_bytes()
        assert len(data) > 5000, p
        assert data[:4] == (b"\x89PNG" if p.suffix == ".png" else b"%PDF")


def test_models_figure_has_one_bar_per_model_with_ranges(log: Path) -> None:
    from otm.report import summarize
    from otm.report.figures import figure_models

    summary = summarize(otm.report.read_log(log))
    fig = figure_models(summary)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(labels) == sorted(m.model for m in summary.by_model)
    assert len(ax.patches) == len(summary.by_model)
    # error bars exist (the range is part of the result)
    assert any(c.__class__.__name__ == "LineCollection" for c in ax.collections)


def test_cli_figures(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-fig"
    assert main(["report", str(log), "--figures", str(out), "--no-progress"]) == 0
    assert {p.name for p in out.iterdir()} >= {"otm-models.png", "otm-breakdown.pdf", "otm-over_time.png"}
