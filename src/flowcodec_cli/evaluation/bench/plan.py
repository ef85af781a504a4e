"""What a bench run measures: one Codec per model (its β sweep) and per available classical codec
(its settings), each with the cache id that pins what produced its numbers.

Default β sweep (`DEFAULT_BETAS`): 8 values covering [0.0005, 0.05], about evenly spaced in
log β (doubling steps up to 0.008, then 0.014, 0.02 and 0.05), with 0.0005, 0.02 and 0.05
included exactly. Each model gets the part inside its range, extended down to its own smallest
β when that is below 0.0005 (`default_betas`: the hyperprior adds 0.0003, the flow codec
0.0001). An architecture may bring its own sweep instead (`own_betas`): the VQ-VAE's β only
chooses how many stages it sends, the shared sweep would repeat some counts and skip others, so
it sweeps one β per stage count (`VQVAECodec.default_betas`: 12 points for 12 stages), in bench
and bench --stereo alike. `--betas` replaces the sweep for every model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from flowcodec_cli import zoo
from flowcodec_cli.codec import rdoq
from flowcodec_cli.models import MODEL_CLASSES
from flowcodec_cli.evaluation import classical
from flowcodec_cli.evaluation.bench.cache import CACHE_VERSION
from flowcodec_cli.evaluation.bench.environment import library_versions
from flowcodec_cli.evaluation.bench.failures import notice
from flowcodec_cli.evaluation.bench.options import BenchUsageError

DEFAULT_BETAS: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.014, 0.02, 0.05)


@dataclass
class Codec:
    """One row of the run: a model or a classical codec, with its settings and cache id."""

    key: str            # curve key, as in reports: the model name or the classical codec name
    kind: str           # "model" or "classical"
    description: str
    settings: tuple[float, ...]
    setting_kind: str   # "beta", "quality", ...
    cache_id: str
    weights_sha256: str | None = None
    effort: int = 0     # a model's encoder effort (`encode --effort`); classical codecs: 0


def default_betas(config: dict) -> tuple[float, ...]:
    """A model's default sweep: DEFAULT_BETAS inside its range, plus its smallest β when that is
    below 0.0005 (the flow codec's high-fidelity end)."""
    lo, hi = config.get("beta_min", DEFAULT_BETAS[0]), config.get("beta_max", DEFAULT_BETAS[-1])
    return tuple(sorted(b for b in {lo, *DEFAULT_BETAS} if lo <= b <= hi))


def own_betas(architecture: str, config: dict) -> tuple[float, ...] | None:
    """The sweep an architecture chooses for weights with this config (a `default_betas(config)`
    on its model class), or None: the shared sweep applies."""
    from flowcodec_cli.models import MODEL_CLASSES
    hook = getattr(MODEL_CLASSES.get(architecture), "default_betas", None)
    return None if hook is None else tuple(hook(config))


def model_config(path) -> dict:
    """A weights file's stored config (its β range), read from the metadata alone: planning
    must not load every model's tensors."""
    meta = zoo.read_metadata(path)
    if "config" not in meta:
        raise zoo.WeightsError(f"{path.name}: no config metadata")
    return json.loads(meta["config"])


def plan_models(names: list[str], betas: tuple[float, ...] | None, device: str,
                effort: int = 0, shared: tuple[float, ...] | None = None) -> list[Codec]:
    """One Codec per model name; `betas` None means each model's default sweep: its
    architecture's own (`own_betas`), else `shared` if given, else `default_betas`. The weights
    are verified here (zoo.verify), before any image is read, and their sha256 goes into the
    cache id, so changed weights never reuse old points; so do the encoder's rounding where it is
    not the nearest (`rdoq.cache_tag`) and an encoder effort above 0 (effort 0 and nearest
    rounding keep the ids, and the cached points, of the runs before either existed)."""
    codecs = []
    for name in names:
        if name not in zoo.REGISTRY:
            raise BenchUsageError(f"--models: unknown model {name!r} "
                                  f"(known: {', '.join(sorted(zoo.REGISTRY))})")
        entry = zoo.REGISTRY[name]
        path, sha = zoo.verify(name)
        config = {**model_config(path), **dict(entry.config)}
        lo, hi = config.get("beta_min"), config.get("beta_max")
        sweep = betas if betas is not None else (own_betas(entry.architecture, config)
                                                 or shared or default_betas(config))
        for beta in sweep:
            if lo is not None and hi is not None and not lo <= beta <= hi:
                raise BenchUsageError(f"--betas: {beta:g} is outside model {name!r}'s range "
                                      f"[{lo:g}, {hi:g}]")
        at_effort = f", effort {effort}" if effort else ""
        codecs.append(Codec(key=name, kind="model",
                            description=f"{name} ({entry.architecture}), weights {entry.file} "
                                        f"sha256 {sha[:12]}…{at_effort}",
                            settings=tuple(sweep), setting_kind="beta",
                            cache_id=f"v{CACHE_VERSION}-model-{name}-{sha[:16]}-{device}"
                                     + rdoq.cache_tag(MODEL_CLASSES.get(entry.architecture))
                                     + (f"-effort{effort}" if effort else ""),
                            weights_sha256=sha, effort=effort))
    return codecs


def plan_classical(names: list[str], overrides: dict[str, tuple[float, ...]]) -> list[Codec]:
    """One Codec per available classical codec (an unavailable one is skipped with a notice),
    with `overrides` replacing a codec's default settings."""
    known = {c.name: c for c in classical.CODECS}
    for name in list(names) + list(overrides):
        if name not in known:
            raise BenchUsageError(f"unknown classical codec {name!r} (known: {', '.join(known)})")
    for name in overrides:
        if name not in names:
            raise BenchUsageError(f"--settings {name}=...: codec {name!r} is not benchmarked")
    versions = library_versions()
    codecs = []
    for name in names:
        codec = known[name]
        reason = codec.unavailable_reason()
        if reason is not None:
            notice(f"bench: skipping {name}: {reason}")
            continue
        # The id changes with the configuration and with the libraries that produce the bytes.
        ident = json.dumps([codec.description, versions.get("pillow"), versions.get("imagecodecs")])
        codecs.append(Codec(key=name, kind="classical", description=codec.description,
                            settings=tuple(overrides.get(name, codec.settings)),
                            setting_kind=codec.setting_kind,
                            cache_id=f"v{CACHE_VERSION}-classical-{name}-"
                                     f"{hashlib.sha256(ident.encode()).hexdigest()[:12]}"))
    return codecs
