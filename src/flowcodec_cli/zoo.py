"""Named, hash-pinned weights: the only way encode and decode get a model.

Each entry names a weights file in `weights/` and its sha256. Loading verifies the hash first
(a tampered or swapped file is refused), reads it with safetensors (no pickle, so a weights file
cannot execute code), rebuilds the architecture from the config stored inside the file, and
loads the tensors strictly (missing or unexpected keys are an error). Writing weights is
training's job (`training/checkpoints.export_weights`): this module only reads.

The registry itself is pure Python (torch and safetensors are imported by the functions that read
tensors), so the command line can check a model name before it pays for importing torch.

The weights folder is `$FLOWCODEC_WEIGHTS` if set, else the `weights/` folder of the source tree
this package was installed from (`make demo` installs it in editable mode).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from flowcodec_cli.errors import WeightsError, WeightsMissing


@dataclass(frozen=True)
class ZooEntry:
    name: str
    architecture: str
    file: str
    sha256: str
    stereo: bool = False  # the side-information family: benchmarked on pairs (bench --stereo)
    #: overrides of the config stored in the file: one weights file, another mode (dsc-joint)
    config: tuple[tuple[str, object], ...] = ()
    channel: bool = False  # JSCC weights (`flowcodec channel`, bench --channel): no .fcx codec
    #: the bandwidth ratio JSCC weights were trained for: `--ratio` picks the entry by it
    ratio: str | None = None


REGISTRY: dict[str, ZooEntry] = {}


def _register(entry: ZooEntry) -> None:
    if entry.name in REGISTRY:
        raise ValueError(f"duplicate model name {entry.name!r}")
    REGISTRY[entry.name] = entry


_register(ZooEntry(
    name="hyperprior",
    architecture="hyperprior",
    file="hyperprior.safetensors",
    sha256="9db2343fa0f0649a6ec0e588fcbad93c420d67778877ef9c7f331b7e01bdd39d",
))

_register(ZooEntry(
    name="flow",
    architecture="flow",
    file="flow.safetensors",
    sha256="feb37d85c06de94523a3edfa23f665afbf8a305d12294e920f484549f37eacaf",
))

# The side-information family (bench --stereo), built on the flow codec. dsc is the distributed
# codec (the product): the flow plus a side stage in its decoder, trained on the frozen flow and
# grafted onto the shipped flow weights (flowcodec train graft). dsc-joint is the same weights
# whose encoder also uses the side view (refining its latents, effort >= 1): the upper bound.
# dsc-separate is the control without side information, same data and budget: with the flow
# frozen, that is the flow itself, so it names the flow's file.
_register(ZooEntry(
    name="dsc",
    architecture="flow-side-info",
    file="dsc.safetensors",
    sha256="7b7c6a2bae8bf1114ce7f3d30e4dcda69ea2890a5ba08747a75856c390d57581",
    stereo=True,
))

_register(ZooEntry(
    name="dsc-joint",
    architecture="flow-side-info",
    file="dsc.safetensors",
    sha256="7b7c6a2bae8bf1114ce7f3d30e4dcda69ea2890a5ba08747a75856c390d57581",
    stereo=True,
    config=(("mode", "joint"),),
))

_register(ZooEntry(
    name="dsc-separate",
    architecture="flow",
    file="flow.safetensors",
    sha256="feb37d85c06de94523a3edfa23f665afbf8a305d12294e920f484549f37eacaf",
    stereo=True,
))

# JSCC (`flowcodec channel`, bench --channel): the flow fine-tuned with an AWGN channel in the
# loop over 0-20 dB, one file per bandwidth ratio (docs/channel.md); `--ratio` picks the file
# trained for it, and flow-channel (1/6) serves any other. Not .fcx codecs: encode/decode refuse them.
_register(ZooEntry(
    name="flow-channel",
    architecture="flow-channel",
    file="flow-channel.safetensors",
    sha256="e3bea3edcb757aff0814b15f57aeb5147a7ca9e6551eea8a4ba2ece5bb134f0d",
    channel=True,
    ratio="1/6",
))

_register(ZooEntry(
    name="flow-channel-1-12",
    architecture="flow-channel",
    file="flow-channel-1-12.safetensors",
    sha256="bc91291d063e6f08b2e5281e828eafd37ef88f28a578ddec77f28cbcdbf860be",
    channel=True,
    ratio="1/12",
))

# The VQ-VAE baseline (models/vqvae.py, coded by codec/indices.py; issue 19): residual VQ with
# a learned prior over the indices, trained from scratch with the from-scratch flow's recipe
# (weights/vqvae.json). The conditional variant (seed 004) is the same architecture whose file's
# config has side_info true, marked stereo like the dsc family.
_register(ZooEntry(
    name="vqvae",
    architecture="vqvae",
    file="vqvae.safetensors",
    sha256="68e57446d5f78b7b1869b73ddc7d5361ed92574bfd707c67495d3dd7cc8e43a9",
))

_register(ZooEntry(
    name="vqvae-side",
    architecture="vqvae",
    file="vqvae-side.safetensors",
    sha256="cd63852383db62f1176659c9f40f93c7f07d35634952e376175776ea1418cc9d",
    stereo=True,
))

DEFAULT_MODEL = "flow"
"""The model `encode` uses without --model: the flow codec, the better of the two on Kodak
(BD-rate -2.3% against the hyperprior codec in docs/bench.json), at about twice its CPU time."""


CHANNEL_MODEL = "flow-channel"
"""The JSCC weights used at a ratio no entry was trained for (architecture "flow-channel",
`channel=True`). Without it, `flowcodec channel` runs the `flow` weights with an untrained
receiver (jscc.load); registering it is all a trained file needs."""


def weights_dir() -> Path:
    env = os.environ.get("FLOWCODEC_WEIGHTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "weights"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_metadata(path: Path) -> dict[str, str]:
    """A safetensors file's metadata (architecture, config, trained_steps, operating_points):
    the one reader of it, which needs no tensors loaded."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_state(path: Path) -> tuple[str, dict, dict[str, "torch.Tensor"]]:
    """Architecture name, config and float32 tensors from a safetensors weights file."""
    from safetensors import safe_open
    meta = read_metadata(path)
    if "architecture" not in meta or "config" not in meta:
        raise WeightsError(f"{path.name}: no architecture/config metadata")
    with safe_open(str(path), framework="pt") as f:
        tensors = {key: f.get_tensor(key).float() for key in f.keys()}
    return meta["architecture"], json.loads(meta["config"]), tensors


def weights_path(name: str) -> Path:
    """Where a registered model's weights file lives (not yet verified)."""
    if name not in REGISTRY:
        raise WeightsError(f"unknown model {name!r} (known: {', '.join(sorted(REGISTRY))})")
    return weights_dir() / REGISTRY[name].file


def verify(name: str) -> tuple[Path, str]:
    """The weights file of a registered model and its sha256, which must be the pinned one: the
    one check every loader and listing uses. Raises WeightsError (missing, unknown, tampered)."""
    path = weights_path(name)
    if not path.is_file():
        raise WeightsMissing(f"weights file {path} not found")
    actual = sha256_file(path)
    expected = REGISTRY[name].sha256
    if actual != expected:
        raise WeightsError(f"weights file {path.name} fails its sha256 check "
                           f"(expected {expected[:12]}…, found {actual[:12]}…)")
    return path, actual


def load(name: str = DEFAULT_MODEL):
    """Verify and load a registered model in eval mode. Returns (model, sha256 hex)."""
    from flowcodec_cli.models import build_model
    path, sha = verify(name)
    entry = REGISTRY[name]
    architecture, config, tensors = load_state(path)
    if architecture != entry.architecture:
        raise WeightsError(f"{path.name} holds a {architecture!r} model, expected {entry.architecture!r}")
    model = build_model(architecture, {**config, **dict(entry.config)})
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise WeightsError(f"{path.name}: missing keys {missing}, unexpected keys {unexpected}")
    model.eval()
    return model, sha


def trained_steps(path: Path) -> int:
    """Training steps behind a weights file (all sessions), from its metadata; 0 if unrecorded."""
    return int(read_metadata(path).get("trained_steps", 0))
