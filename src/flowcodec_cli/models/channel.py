"""Joint source–channel coding (JSCC) with the flow codec: the flow's latents sent as analog
symbols over an AWGN channel (proposal §3 step 4: z̃_channel = f_φ(z̃ + η), then f⁻¹).

Data path (`transmit`; `send` is the transmitter, `awgn` the channel, `receive` the receiver)::

    x ──f(·, β_f)──► h (B, C=3·4^L, H/2^L, W/2^L)         the flow codec's bijection, unchanged
    h ──first m = C·k/n channels of `channel_order`──► s    coarse subbands first (highest variance)
    s ──(s − μ)·a──► u ──÷ c, c = ‖u‖/√k──► v               ‖v‖²/k = 1 exactly, per image
    v ──+ η, η ~ N(0, 10^(−SNR/10)) per real channel use──► r
    r ──·c ÷ a + μ──► s̃ = s + e ──MMSE shrinkage──► ŝ ──scatter, untransmitted = μ──► ĥ₀
    ĥ₀ ──+ σ·CNN(ĥ₀, SNR)──► ĥ                               f_φ, the noise-adaptive receiver
    ĥ ──f⁻¹(·, β_f)──► x̂

- **Bandwidth.** n = 3·H·W pixel values, k channel uses, ratio k/n. h has exactly n values (C
  channels at 1/2^L of the image size), so ratio k/n sends the first C·k/n channels: 32 of 192
  at 1/6, 16 at 1/12, all at 1. A ratio whose channel count is not a whole number is refused
  (`sent_channels`). The order is by latent variance on training photos
  (`python -m flowcodec_cli.training.channel_stats`); the coarse subbands come first.
- **Power.** Average power 1 per channel use, exactly, per image: v = u / c with
  c = sqrt(‖u‖²/k), so ‖v‖²/k = 1. The receiver needs c to undo it: it travels as a 32-bit float
  in a digital header assumed error-free (32 bits against k ≈ 65,000 channel uses for a
  768×512 image at 1/6; not counted in k). μ and a are fixed per channel (parameters of the
  model, known to both ends): μ removes the mean so no power is spent on it, and a allocates
  power across channels, initialized at a_i = σ_i^(−1/2), i.e. power ∝ σ_i, the high-SNR optimum
  of linear analog transmission (minimizing Σ σ_i²·N/p_i subject to Σ p_i = k).
- **Channel.** Real AWGN: r = v + η, η ~ N(0, N) i.i.d., N = 10^(−SNR/10) for SNR in dB. Its
  capacity is ½·log2(1 + SNR) bits per (real) channel use.
- **Receiver.** The receiver knows the SNR and c. Per channel, s̃_i = s_i + e_i with
  e_i ~ N(0, σ_e,i²), σ_e,i = √N·c / a_i; with the prior s_i ~ N(μ_i, σ_i²) the linear MMSE
  estimate is ŝ_i = μ_i + w_i·(s̃_i − μ_i), w_i = σ_i² / (σ_i² + σ_e,i²). That alone is the
  untrained baseline. f_φ (`NoiseAdaptiveReceiver`) then adds a residual computed from all
  channels and conditioned on each channel's remaining variance fraction ρ_i = 1 − w_i (1 for an
  untransmitted channel), so it can denoise the received channels and predict the untransmitted
  ones from them. Its last layer starts at zero: the untrained model is exactly the MMSE
  baseline. It is not a bijection (denoising cannot be), unlike the proposal's "flow layer".
- **Flow β.** The flow is β-conditioned; JSCC runs it at one β, `flow_beta` (default β_min,
  whose latents lose least when the fine channels are dropped: 32.6 dB at 1/6 without noise on
  held-out crops, against 29.5 dB at β_max). The β the training loop draws is ignored.

Training (`flowcodec train --model flow-channel --init-from weights/flow.safetensors`): the
state-dict names of the flow (and of its unused entropy model) are FlowCodec's, so flow weights
load as they are; `forward` draws an SNR per sample, uniform in dB over [snr_min, snr_max]
(equal ends: a model for one SNR), and returns zero bits: the loss is the MSE alone
(`distortion_only`, see training/loss.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from flowcodec_cli.models.flow import FlowCodec, FlowConfig

STATS_PATH = Path(__file__).resolve().parents[1] / "data" / "channel_stats.json"
"""Latent statistics of the shipped flow weights (order, mean, std per channel) measured by
`python -m flowcodec_cli.training.channel_stats`: the defaults of `ChannelConfig`."""


def _measured_stats(channels: int) -> dict | None:
    """The measured statistics, if they are for a flow with this many latent channels."""
    if not STATS_PATH.is_file():
        return None
    stats = json.loads(STATS_PATH.read_text())
    return stats if len(stats["channel_order"]) == channels else None


@dataclass(frozen=True)
class ChannelConfig(FlowConfig):
    """FlowConfig plus the channel's: stored next to the weights like every config."""

    ratio: str = "1/6"          # k/n, channel uses per pixel value (see `sent_channels`)
    snr_min: float = 0.0        # training SNR range, dB, uniform; equal ends: one SNR
    snr_max: float = 20.0
    flow_beta: float = 0.0001   # the β the flow runs at
    receiver_hidden: int = 64   # width of f_φ
    # Latent channels by variance, highest first, and each channel's mean and standard deviation
    # on training photos (initial values of the MMSE prior and the power allocation). Empty: the
    # measured values of the shipped flow (data/channel_stats.json) where the channel count
    # matches, else identity, 0 and 1.
    channel_order: tuple[int, ...] = ()
    latent_mean: tuple[float, ...] = ()
    latent_std: tuple[float, ...] = ()

    def __post_init__(self):
        super().__post_init__()
        c = self.latent_channels
        measured = _measured_stats(c) if not self.channel_order else None
        defaults = {"channel_order": tuple(range(c)), "latent_mean": (0.0,) * c,
                    "latent_std": (1.0,) * c}
        for name, default in defaults.items():
            value = tuple(getattr(self, name)) or tuple((measured or {}).get(name, default))
            if len(value) != c:
                raise ValueError(f"{name} has {len(value)} entries, the flow has {c} channels")
            object.__setattr__(self, name, value)
        if sorted(self.channel_order) != list(range(c)):
            raise ValueError("channel_order must be a permutation of the latent channels")
        if self.snr_min > self.snr_max:
            raise ValueError(f"snr_min {self.snr_min} > snr_max {self.snr_max}")
        sent_channels(self.ratio, c)


def parse_ratio(ratio: str | float | Fraction) -> Fraction:
    """'1/6', '0.5', 1 → a Fraction in (0, 1]; ValueError otherwise."""
    try:
        value = Fraction(str(ratio).strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"ratio {ratio!r}: expected k/n such as 1/6 or 1/12") from None
    if not 0 < value <= 1:
        raise ValueError(f"ratio {ratio}: must lie in (0, 1] (channel uses per pixel value)")
    return value


def sent_channels(ratio: str | float | Fraction, channels: int) -> int:
    """How many latent channels a bandwidth ratio k/n sends: channels · k/n, which must be whole."""
    value = parse_ratio(ratio)
    sent = value * channels
    if sent.denominator != 1:
        supported = ", ".join(f"1/{d}" for d in range(1, channels + 1) if channels % d == 0)
        raise ValueError(f"ratio {ratio}: unsupported: {channels}·k/n = {float(sent):g} is not a "
                         f"whole number of latent channels (supported: m/{channels} for whole m, "
                         f"e.g. {supported})")
    return int(sent)


def noise_variance(snr_db: torch.Tensor) -> torch.Tensor:
    """N = 10^(−SNR/10): the noise power per real channel use at unit signal power."""
    return torch.pow(10.0, -snr_db.double() / 10).float()


def awgn(v: torch.Tensor, snr_db: torch.Tensor,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """The AWGN channel: v (B, ...) plus i.i.d. N(0, 10^(−SNR/10)) noise, SNR (B,) in dB.
    The noise is drawn on the CPU (from `generator` if given), so a seed gives the same noise on
    every device."""
    noise = torch.randn(v.shape, generator=generator, dtype=torch.float32).to(v.device)
    return v + noise * noise_variance(snr_db).sqrt().view(-1, *[1] * (v.dim() - 1)).to(v.device)


def capacity(snr_db: float) -> float:
    """Capacity of the real AWGN channel in bits per channel use: ½·log2(1 + SNR)."""
    return 0.5 * math.log2(1 + 10 ** (snr_db / 10))


class NoiseAdaptiveReceiver(nn.Module):
    """f_φ: a residual on the MMSE estimate of all latent channels, conditioned on the channel.

        ĥ₀ (B,C,h,w) ─(ĥ₀ − μ)/σ─► conv3×3 ─+ Linear(log ρ)─► GELU ► conv3×3 ► GELU ► conv3×3 ─► δ
        ĥ = ĥ₀ + σ·δ

    ρ (B, C) is each channel's remaining variance fraction after the MMSE step (1: nothing
    received), which encodes the SNR, the image's power scale and which channels were sent, so
    one network serves every SNR (and, in principle, every ratio). The last convolution starts
    at zero: the untrained receiver is the MMSE estimate itself."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.conv_in = nn.Conv2d(channels, hidden, 3, padding=1)
        self.condition = nn.Linear(channels, hidden)
        self.conv_mid = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv_out = nn.Conv2d(hidden, channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, normalized: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        condition = self.condition(rho.clamp(min=1e-6).log() / 10)  # (B, hidden)
        h = F.gelu(self.conv_in(normalized) + condition[:, :, None, None])
        h = F.gelu(self.conv_mid(h))
        return self.conv_out(h)


class ChannelCodec(FlowCodec):
    """The flow codec's bijection with an analog AWGN channel in its latent space (module
    docstring). Subclasses FlowCodec so that flow weights load under their own names."""

    name = "flow-channel"
    config_class = ChannelConfig
    distortion_only = True   # no rate term: training/loss.py weighs every sample alike

    def __init__(self, config: ChannelConfig = ChannelConfig()):
        super().__init__(config)
        c = config.latent_channels
        std = torch.tensor(config.latent_std, dtype=torch.float32).clamp(min=1e-4)
        self.register_buffer("order", torch.tensor(config.channel_order), persistent=False)
        self.latent_mean = nn.Parameter(torch.tensor(config.latent_mean, dtype=torch.float32))
        self.latent_log_std = nn.Parameter(std.log())
        self.power_log_gain = nn.Parameter(-0.5 * std.log())   # a_i = σ_i^(−1/2)
        self.receiver = NoiseAdaptiveReceiver(c, config.receiver_hidden)

    # -- the three stages ----------------------------------------------------------------------

    def sent_channels(self, ratio=None) -> int:
        return sent_channels(self.config.ratio if ratio is None else ratio,
                             self.config.latent_channels)

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """h = f(x) at `flow_beta`: x (B,3,H,W), H and W multiples of `latent_stride`."""
        return self.flow(x, self._flow_beta(x))

    def send(self, h: torch.Tensor, ratio=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The transmitter: latents h → (symbols v (B, m, h, w) with ‖v‖²/k = 1 per image,
        the power scale c (B,) that travels in the digital header)."""
        sent = self.order[:self.sent_channels(ratio)]
        with torch.autocast(h.device.type, enabled=False):
            u = (h.float()[:, sent] - self.latent_mean[sent].view(1, -1, 1, 1)) \
                * self.power_log_gain[sent].exp().view(1, -1, 1, 1)
            scale = u.square().mean(dim=(1, 2, 3)).clamp(min=1e-12).sqrt()   # (B,)
            return u / scale.view(-1, 1, 1, 1), scale

    def receive(self, r: torch.Tensor, scale: torch.Tensor, snr_db: torch.Tensor,
                ratio=None) -> torch.Tensor:
        """The receiver: received symbols r, the header's scale c and the SNR (B,) in dB →
        latents ĥ (B, C, h, w): MMSE shrinkage, then f_φ."""
        h0, rho = self.mmse(r, scale, snr_db, ratio)
        std = self.latent_log_std.exp().view(1, -1, 1, 1)
        mean = self.latent_mean.view(1, -1, 1, 1)
        return h0 + std * self.receiver((h0 - mean) / std, rho)

    def mmse(self, r: torch.Tensor, scale: torch.Tensor, snr_db: torch.Tensor,
             ratio=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel linear MMSE under the prior N(μ_i, σ_i²): (ĥ₀ (B,C,h,w) with the
        untransmitted channels at μ, ρ (B,C) the remaining variance fractions)."""
        sent = self.order[:self.sent_channels(ratio)]
        b, c = r.shape[0], self.config.latent_channels
        with torch.autocast(r.device.type, enabled=False):
            mean, var = self.latent_mean, (2 * self.latent_log_std).exp()
            gain = self.power_log_gain[sent].exp()                                  # a (m,)
            error_var = (noise_variance(snr_db).to(r.device).view(-1, 1)
                         * scale.float().view(-1, 1).square() / gain.square())      # (B, m)
            weight = var[sent] / (var[sent] + error_var)                             # w (B, m)
            received = r.float() * scale.float().view(-1, 1, 1, 1) / gain.view(1, -1, 1, 1)
            estimate = mean[sent].view(1, -1, 1, 1) + weight[:, :, None, None] * received
            h0 = mean.view(1, -1, 1, 1).expand(b, -1, *r.shape[2:]).clone()
            h0[:, sent] = estimate
            rho = torch.ones(b, c, device=r.device)
            rho[:, sent] = 1 - weight
            return h0, rho

    def reconstruct(self, h_hat: torch.Tensor) -> torch.Tensor:
        """x̂ = f⁻¹(ĥ) at `flow_beta`, not clamped."""
        return self.flow_inverse(h_hat, self._flow_beta(h_hat))

    def transmit(self, x: torch.Tensor, snr_db: torch.Tensor, ratio=None,
                 generator: torch.Generator | None = None) -> dict:
        """One transmission of each image of x at its SNR (B,) in dB: the reconstruction, the
        symbols sent and the power scale."""
        v, scale = self.send(self.latents(x), ratio)
        r = awgn(v, snr_db, generator)
        x_hat = self.reconstruct(self.receive(r, scale, snr_db, ratio))
        return {"x_hat": x_hat, "symbols": v, "scale": scale}

    def forward(self, x: torch.Tensor, beta: torch.Tensor,
                side: torch.Tensor | None = None) -> dict:
        """Training pass: an SNR per sample, uniform in dB over [snr_min, snr_max]; zero bits
        (the training loop's β is ignored: the flow runs at `flow_beta`)."""
        lo, hi = self.config.snr_min, self.config.snr_max
        snr_db = lo + (hi - lo) * torch.rand(x.shape[0])
        out = self.transmit(x, snr_db.to(x.device))
        zeros = torch.zeros(x.shape[0], device=x.device)
        return {"x_hat": out["x_hat"], "y_bits_per_image": zeros, "z_bits_per_image": zeros,
                "snr_db": snr_db}

    def _flow_beta(self, like: torch.Tensor) -> torch.Tensor:
        return torch.full((like.shape[0],), self.config.flow_beta, device=like.device)
