"""What every flowcodec model is: an analysis/synthesis pair plus the shared entropy model.

    x ──analysis(β)──► y ──┬──► round ──► ŷ ─────────────────────────► synthesis(β) ──► x̂
                           │                       ▲ (w, μ, σ) per element
                           └──── entropy_model (h_a, ẑ, h_s; models/entropy_model.py)

The whole contract with the coding core (`codec/pipeline.py`) is:

- `analysis(x, β) → y`: x (B,3,H,W) in [0,1], H and W multiples of `stride`; y float32, already
  multiplied by the model's β-dependent gain, so one integer grid serves the whole rate range.
- `synthesis(ŷ, β) → x̂` (B,3,H,W), not clamped; after all entropy decoding, float32.
- `entropy_model`: a `HyperpriorEntropyModel` (hyper_analysis, z_prior, hyper_params, the
  slices and slice_prior, y_prior, refined, rounded_bits).
- `stride` (image → z), `latent_stride` (image → y), `config.beta_min`, `config.beta_max`,
  `config.hyper_channels`, and `name` (the container's model id).
- Side information: a model with `side_info_at_decoder` takes the side view (B,3,H,W) as a third
  argument of `synthesis`, one with `side_info_at_encoder` as a third argument of `analysis`.

Training replaces rounding by additive noise for the rate; what the synthesis sees in training
is the model's choice (`synthesis_input`). Every model is trained for one objective, `lagrangian`
(L = D + β·R), which the encoder's refinement (`codec/refine.py`) minimizes too.

The VQ-VAE baseline (`vqvae.py`) is the one model outside this contract: its latents are code
indices with their own prior, not a gained y on an integer grid, so the coding core codes them
its own way (`codes_indices`; codec/indices.py). It keeps what the training loop and the
pipeline's shared parts read (`name`, `config`, `stride`, `latent_stride`, the side-information
flags, `analysis`/`synthesis` with the β argument, `forward`'s dict).
"""

from __future__ import annotations

import torch
from torch import nn

from flowcodec_cli.models.entropy_model import HyperpriorEntropyModel

ENTROPY_MODEL = "entropy_model."
"""The component's attribute; its tensors are stored without this prefix (the weights format
predates the component), see `_to_file_names`."""


def _to_file_names(module, state_dict, prefix, local_metadata) -> None:
    """state_dict() post-hook: `entropy_model.h_s.0.weight` is stored as `h_s.0.weight`."""
    for key in [k for k in state_dict if k.startswith(prefix + ENTROPY_MODEL)]:
        state_dict[prefix + key[len(prefix + ENTROPY_MODEL):]] = state_dict.pop(key)


def _from_file_names(module, state_dict, prefix, *_) -> None:
    """load_state_dict() pre-hook: the inverse of `_to_file_names`."""
    heads = {name.split(".")[0] for name in module.entropy_model.state_dict()}
    for key in [k for k in state_dict if k.startswith(prefix)]:
        if key[len(prefix):].split(".")[0] in heads:
            state_dict[prefix + ENTROPY_MODEL + key[len(prefix):]] = state_dict.pop(key)


def lagrangian(distortion, bits, pixels: int, beta):
    """L = D + β·R, the objective of every model: D the MSE on pixels in [0, 1], R the rate in
    bits per dimension (bits / (3·pixels), i.e. bpp / 3). Defined once, here, because training
    (`training/loss.py`) and the encoder's refinement (`codec/refine.py`) must minimize the same
    thing; it works on tensors (per image) and on floats alike."""
    return distortion + beta * (bits / (3 * pixels))


def file_name(parameter_name: str) -> str:
    """The name a parameter of a model has in weights files and checkpoints."""
    return parameter_name.removeprefix(ENTROPY_MODEL)


class LatentCodec(nn.Module):
    """Base class of every model (see the module docstring for the contract)."""

    #: Total downsampling from the image to z: inputs are padded to a multiple of this.
    stride: int

    #: training noise for the rate term (and for `synthesis_input` where a model uses it)
    noise = "uniform"

    side_info_at_encoder = False
    side_info_at_decoder = False

    #: the lowest encoder effort (`codec/refine.py`) this model codes at: a joint side-information
    #: model sees the side view at the encoder only through the refinement
    min_effort = 0

    #: whether the encoder rounds this model's latents up or down against their bits
    #: (`codec/rdoq.py`), pricing a unit of ŷ by `rounding_distortion`; else to the nearest
    rdoq = False

    @property
    def latent_stride(self) -> int:
        """Downsampling from the image to y."""
        return self.stride // HyperpriorEntropyModel.stride

    def build_entropy_model(self, latent: int, width: int, hyper: int, components: int,
                            beta_min: float, beta_max: float, **context) -> None:
        """`context`: context_slices, context_order, context_hidden, context_lrp,
        context_checkerboard (models/context.py)."""
        self.entropy_model = HyperpriorEntropyModel(latent, width, hyper, components,
                                                    beta_min, beta_max, **context)
        self.register_state_dict_post_hook(_to_file_names)
        self.register_load_state_dict_pre_hook(_from_file_names)

    def analysis(self, x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """x (B,3,H,W) in [0,1], H and W multiples of `stride` → gained, unrounded y."""
        raise NotImplementedError

    def synthesis(self, y_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Quantized gained latents → image (B,3,H,W), not clamped."""
        raise NotImplementedError

    def synthesis_input(self, y: torch.Tensor, y_noisy: torch.Tensor) -> torch.Tensor:
        """What the synthesis sees in training instead of round(y)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, beta: torch.Tensor, side: torch.Tensor | None = None) -> dict:
        """Training pass. Returns the reconstruction and the bits of y and z per image (B,).
        `side`: the side-information image, for the models that use it."""
        y = self.analysis(x, beta, side) if self.side_info_at_encoder else self.analysis(x, beta)
        z = self.entropy_model.hyper_analysis(y, beta)
        y_bits, z_bits, y_noisy = self.entropy_model.noisy_bits(y, z, beta, self.noise)
        y_synth = self.entropy_model.refined(self.synthesis_input(y, y_noisy))
        x_hat = self.synthesis(y_synth, beta, side) if self.side_info_at_decoder else self.synthesis(y_synth, beta)
        return {"x_hat": x_hat, "y_bits_per_image": y_bits, "z_bits_per_image": z_bits}
