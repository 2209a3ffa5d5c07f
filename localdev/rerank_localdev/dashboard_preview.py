"""The dashboard's panels drawn with matplotlib from a Prometheus' answers, one image, for the manual
(docs/dashboard.png): the same rows, titles, queries and legends as rerank_localdev.dashboard, each query run as a
range query with the variables set. tests/gateway/test_gateway_monitoring.py draws it from its run of the real
engine and gateway (and writes docs/dashboard.png when RERANK_WRITE_DASHBOARD_PREVIEW=1).

Usage: `python -m rerank_localdev.dashboard_preview URL NAMESPACE NAME [OUTPUT] [MINUTES]`.
"""

from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path

import requests

from . import dashboard

OUTPUT = dashboard.REPO / "docs" / "dashboard.png"
COLUMNS = 3


def _legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def range_series(url: str, expr: str, start: float, end: float, step: float) -> list[tuple[dict, list, list]]:
    answer = requests.get(f"{url}/api/v1/query_range",
                          params={"query": expr, "start": start, "end": end, "step": step}, timeout=30).json()
    if answer["status"] != "success":
        raise RuntimeError(f"{expr}: {answer}")
    out = []
    for result in answer["data"]["result"]:
        times = [float(t) - end for t, _ in result["values"]]
        values = [float(v) for _, v in result["values"]]
        out.append((result["metric"], times, values))
    return out


def render(url: str, namespace: str, name: str, output: Path, minutes: float = 5.0,
           rate_interval: str = "10s") -> Path:
    """Draws every panel over the last `minutes` into `output` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = time.time()
    start = end - minutes * 60
    step = max(1.0, minutes * 60 / 200)
    rows = [(title, panels) for title, panels in dashboard.ROWS]
    grid_rows = sum(math.ceil(len(panels) / COLUMNS) for _, panels in rows)
    figure = plt.figure(figsize=(5 * COLUMNS, 2.9 * grid_rows + 0.5 * len(rows)), layout="constrained")
    subfigures = figure.subfigures(len(rows), 1, height_ratios=[math.ceil(len(p) / COLUMNS) for _, p in rows])
    for subfigure, (title, panels) in zip(subfigures, rows):
        subfigure.suptitle(title, fontsize=13, fontweight="bold", x=0.01, ha="left")
        axes = subfigure.subplots(math.ceil(len(panels) / COLUMNS), COLUMNS, squeeze=False).flatten()
        for ax, panel in zip(axes, panels):
            ax.set_title(panel.title, fontsize=10)
            for query in panel.queries:
                expr = (query.expr.replace("$namespace", namespace).replace("$rerankerdeployment", name)
                        .replace("$__rate_interval", rate_interval))
                for labels, times, values in range_series(url, expr, start, end, step):
                    ax.plot([t / 60 for t in times], values, label=_legend(query.legend, labels), linewidth=1.2)
            ax.set_xlabel("minutes", fontsize=8)
            ax.set_ylabel(panel.unit, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.set_ylim(bottom=0)
                ax.legend(fontsize=7, loc="upper left")
            else:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        for ax in axes[len(panels):]:
            ax.axis("off")
    figure.suptitle(f"Rerank operator dashboard: {namespace}/{name}", fontsize=15)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=80)
    plt.close(figure)
    return output


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (3, 4, 5):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    output = Path(argv[3]) if len(argv) > 3 else OUTPUT
    print(render(argv[0], argv[1], argv[2], output, float(argv[4]) if len(argv) > 4 else 5.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
