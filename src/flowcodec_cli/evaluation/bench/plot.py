"""rd.png: PSNR and MS-SSIM (dB) against bpp for our models (thick), the classical codecs
measured in the run (solid) and the published curves (dashed), one colour per codec family so a
measured curve and its published one match. matplotlib is an optional extra: without it the
plot is skipped with a notice and the rest of the reports are still written."""

from __future__ import annotations

from pathlib import Path

from flowcodec_cli.evaluation import anchors
from flowcodec_cli.evaluation.bench.failures import notice
from flowcodec_cli.evaluation.bench.formatting import count
from flowcodec_cli.evaluation.bench.measure import ms_ssim_db
from flowcodec_cli.files.atomic import atomic_path

# Published curves drawn (dashed) in rd.png; every published curve is used for BD figures.
PLOTTED_PUBLISHED = ("vtm", "bpg444", "av1", "jpeg", "webp", "bmshj2018-hyperprior",
                     "bmshj2018-hyperprior-compressai")
# One colour per codec family: a measured curve (solid) and its published one (dashed) match.
FAMILY_COLORS = {"vtm": "#000000", "bpg444": "#7f7f7f", "av1": "#9467bd", "avif": "#9467bd",
                 "jpeg": "#8c564b", "jpeg420": "#8c564b", "jpeg444": "#c08552",
                 "webp": "#2ca02c", "jpeg2000": "#bcbd22", "jxl": "#17becf",
                 "bmshj2018-hyperprior": "#ff7f0e", "bmshj2018-hyperprior-compressai": "#ffbb78"}
OUR_COLORS = ["#1f3fbf", "#d62728", "#6a3d9a", "#e377c2", "#17becf"]


def _series(doc: dict) -> list[tuple]:
    """(label, bpp, psnr, msssim_db, style) of every curve drawn: ours, measured, published."""
    curves = doc["curves"].values()
    series = []
    ours_colors = iter(OUR_COLORS * 4)
    for curve in (c for c in curves if c["kind"] == "model"):
        rows = curve["points"]
        series.append((curve["name"], [r["bpp"] for r in rows], [r["psnr"] for r in rows],
                       [r["ms_ssim_db"] for r in rows],
                       dict(color=next(ours_colors), lw=2.8, marker="o", ms=5, zorder=5)))
    for curve in (c for c in curves if c["kind"] == "classical"):
        rows = curve["points"]
        series.append((curve["name"] + " (measured)", [r["bpp"] for r in rows],
                       [r["psnr"] for r in rows], [r["ms_ssim_db"] for r in rows],
                       dict(color=FAMILY_COLORS.get(curve["key"], "#555555"), lw=1.3,
                            marker=".", ms=6, zorder=3)))
    published = anchors.published()
    for key in (k for k in PLOTTED_PUBLISHED if k in published):
        c = published[key]
        ssim_db = [ms_ssim_db(v) for v in c.ms_ssim] if c.ms_ssim else [None] * len(c.bpp)
        series.append((c.name + " (published)", list(c.bpp), list(c.psnr), ssim_db,
                       dict(color=FAMILY_COLORS.get(key, "#999999"), lw=1.1, ls="--",
                            zorder=2, alpha=0.9)))
    return series


def _draw(ax, series: list[tuple], index: int, ylabel: str, xmax: float) -> None:
    """One panel: quality column `index` (2 PSNR, 3 MS-SSIM dB) against bpp, the y range fitted
    to what is visible up to `xmax` (published curves reach far beyond our rates)."""
    visible = []
    for label, bpp, psnr, ssim, style in series:
        values = (bpp, psnr, ssim)[index - 1]
        pts = [(b, v) for b, v in zip(bpp, values) if v is not None]
        if not pts:
            continue
        style = {k: v for k, v in style.items() if v is not None}
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, **style)
        visible += [v for b, v in pts if b <= xmax]
    ax.set_xlim(0, xmax)
    if visible:
        lo, hi = min(visible), max(visible)
        pad = 0.04 * (hi - lo or 1.0)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("bits per pixel (complete file)")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def pyplot(figure_name: str):
    """matplotlib.pyplot on the Agg backend, or None with a one-line notice that `figure_name`
    is skipped: matplotlib is an optional extra of every bench mode."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        notice(f"bench: matplotlib is not installed, {figure_name} skipped "
               "(pip install 'flowcodec-cli[bench]')")
        return None
    return plt


def save_figure(plt, fig, path: Path) -> Path:
    """Write the figure as a PNG atomically, and free it."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=130)
    finally:
        plt.close(fig)
    return path


def plot(doc: dict, path: Path) -> Path | None:
    """rd.png: PSNR vs bpp and MS-SSIM (dB) vs bpp. None, with a notice, without matplotlib."""
    plt = pyplot("rd.png")
    if plt is None:
        return None

    series = _series(doc)
    ours = [b for s in series if s[4].get("ls") != "--" for b in s[1]]
    xmax = max(1.0, 1.1 * max(ours)) if ours else 2.0
    fig, axes = plt.subplots(1, 2, figsize=(14, 6))
    _draw(axes[0], series, 2, "PSNR-RGB [dB]", xmax)
    _draw(axes[1], series, 3, "MS-SSIM-RGB [dB]  (−10·log10(1 − MS-SSIM))", xmax)
    cfg = doc["config"]
    fig.suptitle(f"flowcodec bench: {count(cfg['images'], 'image')} from "
                 f"{Path(cfg['directory']).name}, "
                 f"mean of per-image values (published curves: 24 Kodak images)", fontsize=10)
    fig.tight_layout()
    return save_figure(plt, fig, path)
