"""Reference rate-distortion curves on Kodak, shipped with the package.

`flowcodec bench` draws our curve next to well-known ones and reports BD-rates against them.
Shipping the numbers (a few kB of JSON) keeps bench offline and reproducible: everyone compares
against the same points, not against whatever version of a results page was fetched.

Two groups, both RGB PSNR / MS-SSIM on the 24 Kodak images, mean of per-image values, bpp from
complete files:

* `published()`: curves published by CompressAI (InterDigitalInc/CompressAI,
  `results/image/kodak/`, BSD 3-Clause Clear): classical codecs (VTM, HM, BPG, AV1, JPEG,
  JPEG 2000, WebP) and learned models, the latter from the papers and, where CompressAI retrained
  them, from CompressAI's own models. Each curve's `source` names the file and the paper; cite
  CompressAI (Bégaint et al. 2020, arXiv:2011.03029) and the paper when you use one.
* `measured()`: classical codecs measured with the same Pillow / imagecodecs builds as ours, at
  the settings of `classical.CODECS` (see `classical.MEASURED_CURVE`), so our classical
  measurements can be checked against them point by point (`classical_check`).

Points are sorted by increasing bpp. The JSON is generated from the shared anchor folder by
``python -m flowcodec_cli.evaluation.anchors SRC_DIR OUT_JSON``.
"""

from __future__ import annotations

import functools
import json
import sys
from importlib import resources
from pathlib import Path
from typing import NamedTuple

DATA_FILE = "anchors_kodak.json"


class Curve(NamedTuple):
    """One reference curve; `ms_ssim`, `setting`, `enc_s`, `dec_s` are None when not known."""

    key: str
    name: str
    bpp: tuple[float, ...]
    psnr: tuple[float, ...]
    ms_ssim: tuple[float, ...] | None
    source: str
    setting: tuple[float, ...] | None = None
    enc_s: tuple[float, ...] | None = None  # mean seconds per image, measured curves only
    dec_s: tuple[float, ...] | None = None

    def points(self, metric: str = "psnr") -> list[tuple[float, float]] | None:
        """(bpp, quality) pairs for `metrics.bd_rate` / `bd_psnr`; None if metric is missing."""
        values = {"psnr": self.psnr, "ms_ssim": self.ms_ssim}[metric]
        return None if values is None else list(zip(self.bpp, values))


@functools.cache
def load() -> dict:
    """The raw JSON document (parsed once)."""
    text = resources.files("flowcodec_cli").joinpath("data", DATA_FILE).read_text("utf-8")
    return json.loads(text)


def _curves(group: dict) -> dict[str, Curve]:
    def opt(entry: dict, field: str) -> tuple | None:
        return tuple(entry[field]) if field in entry else None

    return {key: Curve(key=key, name=e["name"], bpp=tuple(e["bpp"]), psnr=tuple(e["psnr"]),
                       ms_ssim=opt(e, "ms_ssim"), source=e["source"], setting=opt(e, "setting"),
                       enc_s=opt(e, "enc_s"), dec_s=opt(e, "dec_s"))
            for key, e in group.items()}


def published() -> dict[str, Curve]:
    """CompressAI's published Kodak curves, by key (e.g. "vtm", "bmshj2018-hyperprior")."""
    return _curves(load()["published"]["curves"])


def measured() -> dict[str, Curve]:
    """Classical codecs measured with our library builds, by key (e.g. "webp_m6")."""
    return _curves(load()["measured"]["curves"])


# --- building the JSON from the shared anchor folder ----------------------------------------

_COMPRESSAI = "InterDigitalInc/CompressAI results/image/kodak/"
# key -> (file in published_kodak/, display name, kind, citation)
_PUBLISHED = {
    "vtm": ("vtm.json", "VTM", "classical",
            "VVC reference software VTM (JVET), H.266/VVC intra"),
    "hm": ("hm.json", "HM", "classical", "HEVC reference software HM (JCT-VC), H.265/HEVC intra"),
    "bpg444": ("bpg_444_x265_ycbcr.json", "BPG 4:4:4", "classical",
               "F. Bellard, BPG 0.9.8 (x265), 4:4:4 YCbCr"),
    "av1": ("av1.json", "AV1", "classical", "AOMedia AV1 (libaom) intra"),
    "jpeg": ("jpeg.json", "JPEG", "classical", "JPEG (ITU-T T.81), Pillow 7.1.2 defaults"),
    "jpeg2000": ("jpeg2000.json", "JPEG 2000", "classical",
                 "JPEG 2000 (ITU-T T.800), ffmpeg 3.4.6"),
    "webp": ("webp.json", "WebP", "classical", "WebP, Pillow 7.1.2 defaults"),
    "bmshj2018-factorized": (
        "paper-bmshj2018-factorized.json", "bmshj2018-factorized (paper)", "learned",
        "J. Ballé, D. Minnen, S. Singh, S. J. Hwang, N. Johnston, 'Variational image compression "
        "with a scale hyperprior', ICLR 2018 (factorized-prior baseline), official results"),
    "bmshj2018-hyperprior": (
        "paper-bmshj2018-hyperprior.json", "bmshj2018-hyperprior (paper)", "learned",
        "J. Ballé, D. Minnen, S. Singh, S. J. Hwang, N. Johnston, 'Variational image compression "
        "with a scale hyperprior', ICLR 2018, official results"),
    "mbt2018-mean": (
        "paper-mbt2018-mean.json", "mbt2018-mean (paper)", "learned",
        "D. Minnen, J. Ballé, G. Toderici, 'Joint autoregressive and hierarchical priors for "
        "learned image compression', NeurIPS 2018 (mean-scale hyperprior), official results"),
    "mbt2018": (
        "paper-mbt2018.json", "mbt2018 (paper)", "learned",
        "D. Minnen, J. Ballé, G. Toderici, 'Joint autoregressive and hierarchical priors for "
        "learned image compression', NeurIPS 2018, official results"),
    "bmshj2018-factorized-compressai": (
        "compressai-bmshj2018-factorized_mse_cpu.json", "bmshj2018-factorized (CompressAI)",
        "learned", "CompressAI's retrained bmshj2018-factorized, MSE, CPU inference; model of "
        "Ballé et al., ICLR 2018"),
    "bmshj2018-hyperprior-compressai": (
        "compressai-bmshj2018-hyperprior_mse_cpu.json", "bmshj2018-hyperprior (CompressAI)",
        "learned", "CompressAI's retrained bmshj2018-hyperprior, MSE, CPU inference; model of "
        "Ballé et al., ICLR 2018"),
    "mbt2018-mean-compressai": (
        "compressai-mbt2018-mean_mse_cpu.json", "mbt2018-mean (CompressAI)", "learned",
        "CompressAI's retrained mbt2018-mean, MSE, CPU inference; model of Minnen et al., "
        "NeurIPS 2018"),
    "mbt2018-compressai": (
        "compressai-mbt2018_mse_cpu.json", "mbt2018 (CompressAI)", "learned",
        "CompressAI's retrained mbt2018, MSE, CPU inference; model of Minnen et al., "
        "NeurIPS 2018"),
    "cheng2020-anchor": (
        "compressai-cheng2020-anchor_mse_cpu.json", "cheng2020-anchor (CompressAI)", "learned",
        "CompressAI's retrained cheng2020-anchor, MSE, CPU inference; model of Z. Cheng, H. Sun, "
        "M. Takeuchi, J. Katto, 'Learned image compression with discretized Gaussian mixture "
        "likelihoods and attention modules', CVPR 2020"),
    "elic2022": (
        "paper-elic2022_mse.json", "ELIC (paper)", "learned",
        "D. He, Z. Yang, W. Peng, R. Ma, H. Qin, Y. Wang, 'ELIC: Efficient learned image "
        "compression with unevenly grouped space-channel contextual adaptive coding', CVPR 2022 "
        "(arXiv:2203.10886), official results"),
}


def _sorted_by_bpp(columns: dict[str, list]) -> dict[str, list]:
    order = sorted(range(len(columns["bpp"])), key=lambda i: columns["bpp"][i])
    return {k: [v[i] for i in order] for k, v in columns.items()}


def _rounded(columns: dict[str, list]) -> dict[str, list]:
    # Enough digits for 1e-4 dB / 1e-6 bpp comparisons, few enough to keep the file small.
    digits = {"bpp": 6, "psnr": 4, "ms_ssim": 6, "setting": 4, "enc_s": 5, "dec_s": 5}
    return {k: [round(float(x), digits[k]) for x in v] for k, v in columns.items()}


def build(src_dir: Path) -> dict:
    """Assemble the shipped JSON from the shared anchor folder (README.md describes it)."""
    src_dir = Path(src_dir)
    measured_doc = json.loads((src_dir / "kodak_classical_measured.json").read_text("utf-8"))
    meta = measured_doc["meta"]
    commit = meta["published_reference"].split("commit ")[-1].split(",")[0].strip()

    published_curves = {}
    for key, (fname, name, kind, citation) in _PUBLISHED.items():
        results = json.loads((src_dir / "published_kodak" / fname).read_text("utf-8"))["results"]
        columns = {"bpp": results["bpp"], "psnr": results["psnr-rgb"]}
        if "ms-ssim-rgb" in results:
            columns["ms_ssim"] = results["ms-ssim-rgb"]
        published_curves[key] = {"name": name, "kind": kind,
                                 "source": f"{_COMPRESSAI}{fname} @ {commit}; {citation}",
                                 **_rounded(_sorted_by_bpp(columns))}

    measured_curves = {}
    for key, entry in measured_doc.items():
        if key == "meta":
            continue
        columns = {"bpp": entry["bpp"], "psnr": entry["psnr"], "ms_ssim": entry["ms_ssim"],
                   "setting": entry["setting"], "enc_s": entry["enc_s_per_image"],
                   "dec_s": entry["dec_s_per_image"]}
        measured_curves[key] = {"name": entry["description"],
                                "source": f"kodak_classical_measured.json ({meta['date']})",
                                **_rounded(_sorted_by_bpp(columns))}

    return {
        "format": 1,
        "dataset": "Kodak, 24 RGB images 768x512; PSNR-RGB and MS-SSIM-RGB (data range 255) per "
                   "image, then the arithmetic mean over images; bpp = 8*bytes/(H*W) of the "
                   "complete file",
        "published": {
            "source": f"{_COMPRESSAI} at commit {commit} (BSD 3-Clause Clear). Cite J. Bégaint, "
                      "F. Racapé, S. Feltman, A. Pushparaja, 'CompressAI: a PyTorch library and "
                      "evaluation platform for end-to-end compression research', "
                      "arXiv:2011.03029, 2020, and the paper named in each curve.",
            "curves": published_curves,
        },
        "measured": {
            "meta": {"machine": meta["machine"], "versions": meta["versions"],
                     "timing": meta["timing"], "bytes": meta["bytes"], "notes": meta["notes"]},
            "curves": measured_curves,
        },
    }


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m flowcodec_cli.evaluation.anchors SRC_DIR OUT_JSON")
    doc = build(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", "utf-8")
