"""The bench's two model analyses (flowcodec_cli.evaluation.analysis), run on the bench images
so that results.md puts them next to the measured curves:

* the rate-distortion bound of the latents, and how far the real payload is from it;
* for invertible models (the flow codec), max |synthesis(analysis(x)) − x| without quantization:
  the error of the transform itself, which must stay negligible against rounding.

Neither is cached: both re-run the models.
"""

from __future__ import annotations

from flowcodec_cli.evaluation.bench.images import BenchImage
from flowcodec_cli.evaluation.bench.plan import Codec


def bound_analysis(planned_models: list[Codec], bench_images: list[BenchImage]) -> list[dict]:
    """`analysis.analyze` for every model and β, averaged over the given images; models that
    code VQ indices have no Gaussian bound and are left out."""
    from flowcodec_cli import codec as neural
    from flowcodec_cli.codec import fcx
    from flowcodec_cli.evaluation import analysis
    from flowcodec_cli.files.images import Picture
    results = []
    for codec in planned_models:
        if neural.LoadedCodec.get(codec.key).indexed:
            continue
        for beta in codec.settings:
            rows = [analysis.analyze(Picture(im.rgb, None, fcx.LAYOUT_RGB), beta, codec.key)
                    for im in bench_images]
            if not rows:
                continue
            mean = {key: sum(r[key] for r in rows) / len(rows)
                    for key, value in rows[0].items() if isinstance(value, float)}
            mean["gaps_bpp"] = {k: sum(r["gaps_bpp"][k] for r in rows) / len(rows)
                                for k in rows[0]["gaps_bpp"]}
            results.append({"model": codec.key, "images": len(rows), **mean, "beta": beta})
    return results


def invertibility(planned_models: list[Codec], bench_images: list[BenchImage]) -> list[dict]:
    """For invertible models: max |synthesis(analysis(x)) − x| without quantization, pixels in
    [0, 1], float32, on every image, at the model's smallest and largest bench β."""
    from flowcodec_cli import codec as neural
    from flowcodec_cli.evaluation import analysis
    results = []
    for planned in planned_models:
        loaded = neural.LoadedCodec.get(planned.key)
        if not getattr(loaded.model, "invertible", False):
            continue
        for beta in (min(planned.settings), max(planned.settings)):
            errors = {im.name: analysis.unquantized_roundtrip_error(loaded.model, im.rgb, beta)
                      for im in bench_images}
            results.append({"model": planned.key, "beta": beta, "images": len(errors),
                            "max_abs_error": max(errors.values()), "per_image": errors})
    return results
