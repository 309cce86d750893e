"""Scaling-law fits over checkpoints: score = a + b * ln(x), R^2, intervals, predictions, PNG plot."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sailvl.errors import SailvlError

X_KEYS = {"tokens": "tokens_seen", "samples": "samples_seen"}


@dataclass
class LogFit:
    """Least-squares fit of score = a + b * ln(x). Intervals are two-sided at `confidence`."""

    a: float
    b: float
    r2: float
    n: int
    confidence: float
    a_interval: tuple[float, float]
    b_interval: tuple[float, float]
    residual_std: float
    predictions: list[dict] = field(default_factory=list)

    def predict(self, x: float) -> float:
        """Fitted score at budget `x` (same unit as the fit's x)."""
        return self.a + self.b * math.log(x)

    def to_dict(self) -> dict:
        """JSON-ready dict of all fields."""
        return asdict(self)


def _t_quantile(confidence: float, dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2.0, dof))


def fit_log_linear(
    xs: list[float], ys: list[float], targets: list[float] | None = None, confidence: float = 0.95
) -> LogFit:
    """Fit score = a + b*ln(x) by ordinary least squares.

    xs are budgets (tokens or samples, > 0), ys scores (any unit, usually 0-100). Returns a, b, R^2,
    t-intervals for a and b, and for each target the predicted score with its prediction interval
    (None bounds when fewer than 3 points leave no degrees of freedom)."""
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x.shape != y.shape or x.size < 2:
        raise SailvlError(f"a scaling fit needs at least 2 (budget, score) points, got {x.size}")
    if np.any(x <= 0):
        raise SailvlError("training budgets must be positive to take their logarithm")
    lx = np.log(x)
    if np.ptp(lx) == 0:
        raise SailvlError("all checkpoints have the same training budget; a fit needs at least two budgets")
    design = np.stack([np.ones_like(lx), lx], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    fitted = a + b * lx
    ss_res = float(np.sum((y - fitted) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    dof = x.size - 2
    sxx = float(np.sum((lx - lx.mean()) ** 2))
    if dof > 0:
        sigma = math.sqrt(ss_res / dof)
        t = _t_quantile(confidence, dof)
        se_b = sigma / math.sqrt(sxx)
        se_a = sigma * math.sqrt(1.0 / x.size + lx.mean() ** 2 / sxx)
        a_int, b_int = (a - t * se_a, a + t * se_a), (b - t * se_b, b + t * se_b)
    else:
        sigma, t = 0.0, float("nan")
        a_int = b_int = (float("nan"), float("nan"))
    fit = LogFit(float(a), float(b), r2, int(x.size), confidence, a_int, b_int, sigma)
    for target in targets or []:
        if target <= 0:
            raise SailvlError(f"target budget {target} must be positive")
        lt = math.log(target)
        pred = fit.predict(target)
        if dof > 0:
            half = t * sigma * math.sqrt(1.0 + 1.0 / x.size + (lt - lx.mean()) ** 2 / sxx)
            low, high = pred - half, pred + half
        else:
            low = high = None
        fit.predictions.append({"x": float(target), "score": pred, "low": low, "high": high})
    return fit


def load_points(
    results_paths: list[str | Path], x_kind: str, metric: str = "average"
) -> list[tuple[float, float]]:
    """(budget, score) from `sailvl eval` results JSONs. `x_kind` is tokens|samples (read from the
    JSON's `tokens_seen`/`samples_seen`, recorded from the checkpoint's trainer_state.json: the run's
    cumulative clock over all stages so far, so a series across stages shares one x axis); `metric`
    is `average`, `opencompass_average`, or a benchmark name (its `score`)."""
    if x_kind not in X_KEYS:
        raise SailvlError(f"--x must be one of {', '.join(X_KEYS)}, got {x_kind!r}")
    points = []
    for path in results_paths:
        path = Path(path)
        if path.is_dir():
            path = path / "results.json"
        if not path.is_file():
            raise SailvlError(f"results file {path} does not exist; run `sailvl eval --out DIR` first")
        data = json.loads(path.read_text())
        budget = data.get(X_KEYS[x_kind])
        if budget is None:
            raise SailvlError(
                f"{path} records no {X_KEYS[x_kind]}; the model directory had no trainer_state.json with it"
            )
        if metric in ("average", "opencompass_average"):
            score = data.get(metric)
        else:
            score = data.get("benchmarks", {}).get(metric, {}).get("score")
        if score is None:
            raise SailvlError(f"{path} has no score for {metric!r}")
        points.append((float(budget), float(score)))
    return points


def plot_fit(
    points: list[tuple[float, float]], fit: LogFit, out_png: str | Path, x_label: str, title: str
) -> Path:
    """Write a PNG: measured points, the fitted curve on a log x axis, prediction band and targets."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    targets = [p["x"] for p in fit.predictions]
    lo = math.log(min(xs.min(), *targets) if targets else xs.min())
    hi = math.log(max(xs.max(), *targets) if targets else xs.max())
    grid = np.exp(np.linspace(lo, hi, 200))
    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.scatter(xs, ys, color="tab:blue", zorder=3, label="checkpoints")
    label = f"{fit.a:.2f} + {fit.b:.2f} ln(x)  (R$^2$={fit.r2:.3f})"
    axes.plot(grid, fit.a + fit.b * np.log(grid), color="tab:orange", label=label)
    for pred in fit.predictions:
        axes.scatter([pred["x"]], [pred["score"]], marker="*", s=120, color="tab:red", zorder=4)
        if pred["low"] is not None:
            axes.vlines(pred["x"], pred["low"], pred["high"], color="tab:red", alpha=0.6)
    axes.set_xscale("log")
    axes.set_xlabel(x_label)
    axes.set_ylabel("score")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png)
    return out_png


def fit_results(
    results_paths: list[str | Path],
    x_kind: str = "tokens",
    targets: list[float] | None = None,
    metric: str = "average",
    out_png: str | Path | None = None,
) -> dict:
    """Load points from results JSONs, fit, optionally plot; returns {points, fit, plot}."""
    points = load_points(results_paths, x_kind, metric)
    fit = fit_log_linear([p[0] for p in points], [p[1] for p in points], targets)
    plot = None
    if out_png is not None:
        plot = str(
            plot_fit(points, fit, out_png, f"{X_KEYS[x_kind].replace('_', ' ')}", f"{metric} vs {x_kind}")
        )
    return {"points": points, "fit": fit.to_dict(), "plot": plot}
