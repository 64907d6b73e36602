"""Markdown tables, plots and report.md."""

from __future__ import annotations

import numpy as np
import pytest

from surgellm_hf import evaluation as ev
from tests.evaluation._evaluation_fixtures import write_runs as _write_runs


def test_markdown_plots_and_report(tmp_path):
    dirs, _ = _write_runs(tmp_path / "runs", {"baseline": 0.7, "IWN": 0.9})
    comp = ev.compare_runs(dirs, n_resamples=200)
    md = ev.render_markdown_table(comp)
    lines = md.splitlines()
    iwn_row = next(line for line in lines if line.startswith("| IWN | 3 |"))
    cell = comp.cells["IWN"]["t1"]
    assert f"{cell['mean']:.3f} ± {cell['sd']:.3f}*" in iwn_row
    assert f"[{cell['ci_low']:.3f}, {cell['ci_high']:.3f}]" in md

    fig = ev.task_f1_figure(comp)
    bars = fig.axes[0].patches
    assert len(bars) == len(comp.variants) * len(comp.columns)
    heights = [b.get_height() for b in bars]
    expected = [comp.cells[v][c]["mean"] for v in comp.variants for c in comp.columns]
    assert heights == pytest.approx(expected)

    gates = ev.gate_values_from_runs(dirs)
    assert set(gates) == {"t1", "t2"} and gates["t1"].shape == (6 * 120,)
    gfig = ev.gate_figure(gates)
    horizontal = {
        round(float(ln.get_ydata()[0]), 12) for ln in gfig.axes[0].lines if len(set(ln.get_ydata())) == 1
    }
    for task in ("t1", "t2"):  # each box draws its median as a horizontal line
        assert round(float(np.median(gates[task])), 12) in horizontal
    assert [t.get_text() for t in gfig.axes[0].get_xticklabels()] == ["t1", "t2"]

    report = ev.write_report(comp, tmp_path / "report", gate_values_by_task=gates)
    text = report.read_text()
    assert "task_f1_by_variant.png" in text and "gate_distribution.png" in text and iwn_row in text
    import matplotlib.image

    for name in ("task_f1_by_variant.png", "gate_distribution.png"):
        raw = (tmp_path / "report" / name).read_bytes()
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        img = matplotlib.image.imread(tmp_path / "report" / name)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300 and img.std() > 0.01
    with pytest.raises(ValueError, match="empty or not finite"):
        ev.gate_figure({"t1": []})
