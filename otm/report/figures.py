"""Publication figures (PNG, PDF, SVG) from a summary, with matplotlib (extra ``plot``).

The HTML report draws its own inline SVG and needs nothing; these figures are
for papers and slides::

    from otm.report.figures import save_figures
    save_figures(exp.summary(), "figures/", formats=("pdf", "png"))

Each figure shows central values with their low–high range as error bars:
the range is part of the result, not decoration.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otm.report.summary import Summary

_COLOURS = {
    "accelerator": "#3b6ea5",
    "host": "#7fa7d1",
    "idle": "#c9c9c9",
    "facility": "#e3a35b",
    "operational": "#5b8c5a",
    "embodied": "#a7c4a0",
    "onsite": "#3a9ad9",
    "offsite": "#9ccbe8",
}


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never needs a display
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError("otm figures need matplotlib: pip install 'otm[plot]'") from exc
    return plt


def _errors(values: Sequence[float], lows: Sequence[float], highs: Sequence[float]) -> list[list[float]]:
    return [[max(v - lo, 0.0) for v, lo in zip(values, lows)], [max(hi - v, 0.0) for v, hi in zip(values, highs)]]


def figure_models(summary: Summary) -> Any:
    """Energy per request and per 1 000 output tokens, by model, with ranges."""
    plt = _pyplot()
    stats = [m for m in summary.by_model if m.energy_per_request_wh is not None]
    stats.sort(key=lambda m: m.energy_per_request_wh.value)  # type: ignore[union-attr]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * max(len(stats), 3) + 1.6), sharey=True)
    names = [m.model for m in stats]
    for ax, attr, label in (
        (axes[0], "energy_per_request_wh", "Wh per request"),
        (axes[1], "energy_per_1k_output_wh", "Wh per 1 000 output tokens"),
    ):
        rs = [getattr(m, attr) for m in stats]
        vals = [r.value if r is not None else 0.0 for r in rs]
        lows = [r.low if r is not None else 0.0 for r in rs]
        highs = [r.high if r is not None else 0.0 for r in rs]
        ax.barh(names, vals, xerr=_errors(vals, lows, highs), color="#3b6ea5", ecolor="#333333", capsize=3)
        ax.set_xlabel(label)
        if vals and min(v for v in vals if v > 0) * 100 < max(vals):
            ax.set_xscale("log")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Energy by model (central estimate, bars = low–high range)")
    fig.tight_layout()
    return fig


def figure_over_time(summary: Summary) -> Any:
    """Energy and carbon of each request over the experiment."""
    plt = _pyplot()
    pts = sorted(summary.points, key=lambda p: p["time"])
    fig, ax = plt.subplots(figsize=(10, 4))
    if pts:
        t0 = pts[0]["time"]
        xs = [p["time"] - t0 for p in pts]
        ax.scatter(xs, [p["energy_wh"] for p in pts], s=14, color="#3b6ea5", label="energy (Wh)")
        ax2 = ax.twinx()
        ax2.scatter(xs, [p["carbon_g"] for p in pts], s=14, marker="x", color="#5b8c5a", label="carbon (gCO2e)")
        ax2.set_ylabel("gCO2e per request")
        ax.set_xlabel("seconds since the first request")
        if any(p["energy_wh"] > 0 for p in pts):
            ax.set_yscale("log")
            ax2.set_yscale("log")
    ax.set_ylabel("Wh per request")
    ax.set_title("Energy and carbon per request over time" + (" (sampled)" if summary.points_sampled else ""))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def figure_breakdown(summary: Summary) -> Any:
    """Where the energy, carbon and water go: three stacked bars in per cent."""
    plt = _pyplot()
    groups = (
        ("energy", summary.breakdown_wh),
        ("carbon", summary.carbon_breakdown_g),
        ("water", summary.water_breakdown_ml),
    )
    fig, ax = plt.subplots(figsize=(9, 3))
    for row, (_label, parts) in enumerate(groups):
        total = sum(parts.values()) or 1.0
        left = 0.0
        for key, value in parts.items():
            share = 100.0 * value / total
            ax.barh(row, share, left=left, color=_COLOURS.get(key, "#999999"), edgecolor="white")
            if share >= 7:
                ax.text(left + share / 2, row, f"{key}\n{share:.0f}%", ha="center", va="center", fontsize=8)
            left += share
    ax.set_yticks(range(len(groups)), [g[0] for g in groups])
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the total (%)")
    ax.set_title("Breakdown: accelerator/host/idle/facility; operational/embodied; on-site/off-site")
    fig.tight_layout()
    return fig


FIGURES = {"models": figure_models, "over_time": figure_over_time, "breakdown": figure_breakdown}


def save_figures(
    summary: Summary, out_dir: str | Path, formats: Iterable[str] = ("png", "pdf"), dpi: int = 200
) -> list[Path]:
    """Write every figure in each format; returns the paths written."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, make in FIGURES.items():
        fig = make(summary)
        try:
            for fmt in formats:
                path = out / f"otm-{name}.{fmt}"
                fig.savefig(path, dpi=dpi, bbox_inches="tight")
                written.append(path)
        finally:
            plt.close(fig)
    return written
