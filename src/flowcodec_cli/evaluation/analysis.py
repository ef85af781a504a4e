"""Rate-distortion bound analysis of the latents (seed 002: rate-distortion limits).

For one image and β, the gained latents y of the model are compared with what information theory
allows for Gaussian sources of the same second moments. The rates form a chain in which each
step swaps one idealization for what the codec really does, so the gaps add up exactly:

    R_bound    Gaussian reverse water-filling: per-channel variances = second moments of y,
               at the distortion D that rounding really causes in the latent space.
    R_uniform  uniform scalar quantization (rounding) of the same latents, each coded with the
               second-moment Gaussian of its channel.          → quantization gap = R_uniform − R_bound
    R_scale    the hyperprior's per-element variance estimate instead (zero-mean Gaussian with
               the mixture's second moment).                   → variance-estimation gap = R_scale − R_uniform
    R_model    the full predicted mixture, means included (the hyperprior's "context").
                                                               → context (mean prediction) gap = R_model − R_scale
    R_real     the range-coded payload of the .fcx file.       → coding overhead = R_real − R_model

A negative gap is a gain: the hyperprior's spatially adaptive variances and its mean prediction
are expected to save bits over the stationary second-moment model. All rates are in bits per
pixel of the image (z's bits are reported separately and are part of R_real only).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from flowcodec_cli import codec as codec_module
from flowcodec_cli.codec import fcx
from flowcodec_cli.codec.pipeline import deterministic
from flowcodec_cli.codec.tiles import image_tensor
from flowcodec_cli.models import mixture
from flowcodec_cli.files.images import Picture


def reverse_water_filling(variances: np.ndarray, distortion: float) -> float:
    """Rate (bits, total over components) of independent Gaussians at total MSE `distortion`.

    R(D) = Σ_i max(0, ½ log2(σ_i² / θ)) with θ chosen so that Σ_i min(θ, σ_i²) = D.
    """
    variances = np.asarray(variances, dtype=np.float64)
    if distortion >= variances.sum():
        return 0.0
    lo, hi = 0.0, float(variances.max())
    for _ in range(200):  # bisection on the water level θ
        theta = 0.5 * (lo + hi)
        if np.minimum(theta, variances).sum() > distortion:
            hi = theta
        else:
            lo = theta
    theta = 0.5 * (lo + hi)
    return float(0.5 * np.log2(np.maximum(variances / theta, 1.0)).sum())


def _gaussian_bits(values: torch.Tensor, means: torch.Tensor, stds: torch.Tensor) -> float:
    """Bits of integer values under discretized Gaussians (unit bins)."""
    params = mixture.MixtureParams(torch.zeros_like(means)[None, None],
                                   means[None, None], stds.clamp(min=1e-6)[None, None])
    return float(mixture.bits(mixture.bin_likelihood(values[None], params))[0])


@deterministic
def _latents(codec, rgb: np.ndarray, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The unrounded y (C, H, W) float64 and the ẑ (1, C', H', W') of a single-tile encode."""
    model = codec.model
    y = model.analysis(image_tensor(rgb, model.stride), torch.tensor([beta]))
    z_hat = torch.round(model.entropy_model.hyper_analysis(y, torch.tensor([beta])))
    return y[0].double(), z_hat


@deterministic
def unquantized_roundtrip_error(model, rgb: np.ndarray, beta: float) -> float:
    """max |synthesis(analysis(x)) − x| over the image's pixels in [0, 1], float32, with the
    rounding of the latents left out: what an invertible transform loses by itself."""
    height, width = rgb.shape[:2]
    x = image_tensor(rgb, model.stride)
    beta_t = torch.tensor([beta])
    x_back = model.synthesis(model.analysis(x, beta_t), beta_t)
    return float((x_back - x)[..., :height, :width].abs().max())


def _analyzable(model_name: str):
    """The loaded model, if it has Gaussian latents to bound and codes single images."""
    codec = codec_module.LoadedCodec.get(model_name)
    if codec.indexed:
        raise codec_module.CodecError(f"model {model_name!r} codes VQ indices, not Gaussian "
                                      "latents: analyze has no bound to compare them with")
    if codec.model.side_info_at_encoder:
        raise codec_module.SideInfoError(f"model {model_name!r} needs the side view to encode; "
                                         "analyze takes single images")
    return codec


@torch.no_grad()
def analyze(picture: Picture, beta: float, model_name: str) -> dict:
    """The bound, the real rate and the gap components for one picture (single tile)."""
    codec = _analyzable(model_name)
    height, width = picture.rgb.shape[:2]
    pixels = height * width
    # one tile covering the picture: a multiple of the container's tile unit (fcx.TILE_MULTIPLE)
    unit = fcx.TILE_MULTIPLE
    data, stats = codec_module.encode(picture, beta, model_name,
                                      tile=-(-max(height, width) // unit) * unit)

    network_beta = stats.network_beta  # the latents below must be the ones the file codes
    y, z_hat = _latents(codec, picture.rgb, network_beta)
    y_hat = torch.round(y)
    # (1, K, C, H, W) float64: the tables of every slice, as the decoder builds them
    params1 = codec.tables.params_given(codec.hyper_params(z_hat, network_beta), y_hat[None])
    r_model = codec.y_bits(y_hat[None], params1)
    params = mixture.MixtureParams(*(p[0] for p in params1))  # (K, C, H, W)

    weights = torch.softmax(params.logits, dim=0)
    second_moment = (weights * (params.scales ** 2 + params.means ** 2)).sum(dim=0)
    channel_moment = (y ** 2).mean(dim=(1, 2))  # (C,)
    elements_per_channel = y.shape[1] * y.shape[2]
    latent_mse = float(((y - y_hat) ** 2).sum())

    r_bound = reverse_water_filling(
        np.repeat(channel_moment.numpy(), elements_per_channel), latent_mse)
    r_uniform = _gaussian_bits(y_hat, torch.zeros_like(y),
                               channel_moment.sqrt()[:, None, None].expand_as(y))
    r_scale = _gaussian_bits(y_hat, torch.zeros_like(y), second_moment.sqrt())
    r_real = stats.payload_bits
    z_bits = stats.estimated_bits - r_model

    def bpp(bits: float) -> float:
        return bits / pixels

    return {
        "beta": beta,
        "network_beta": network_beta,
        "model": model_name,
        "bpp_file": 8 * len(data) / pixels,
        "latent_mse_per_element": latent_mse / y.numel(),
        "bound_bpp": bpp(r_bound),
        "uniform_quantization_bpp": bpp(r_uniform),
        "hyperprior_scale_bpp": bpp(r_scale),
        "model_bpp": bpp(r_model),
        "real_payload_bpp": bpp(r_real),
        "hyper_latent_bpp": bpp(z_bits),
        "gaps_bpp": {
            "quantization": bpp(r_uniform - r_bound),
            "variance_estimation": bpp(r_scale - r_uniform),
            "context_mean_prediction": bpp(r_model - r_scale),
            "coding_overhead_and_z": bpp(r_real - r_model),
        },
        "total_gap_bpp": bpp(r_real - r_bound),
        "uniform_quantization_gap_theory_bits_per_active_element": 0.5 * math.log2(math.pi * math.e / 6),
    }
