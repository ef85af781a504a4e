"""The VQ-VAE baseline (models/vqvae.py, models/layers/vq.py): nearest codes and residual stages,
the β → stage count map, a prior that sees only earlier stages and whose training bits are the
coding path's bits, gradients to every learned part, a side view that reaches the decoder only,
and checkpoints, resume and export like every model. Tiny configs, so it runs in seconds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from model_helpers import randomized

from flowcodec_cli import zoo
from flowcodec_cli.models import build_model
from flowcodec_cli.models.layers.vq import ResidualQuantizer
from flowcodec_cli.models.vqvae import stages_for_beta
from flowcodec_cli.training import checkpoints
from flowcodec_cli.training import loop as train
from flowcodec_cli.training.loss import rd_loss

DATA = Path(__file__).parent / "data"
TINY = {"width": 8, "latent_dim": 4, "codebook_size": 8, "stages": 3, "prior_hidden": 8}


def _model(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return randomized(build_model("vqvae", {**TINY, **overrides}), seed)


def _fitted_quantizer(seed: int = 0) -> tuple[ResidualQuantizer, torch.Tensor]:
    """A quantizer whose codebooks learned (EMA) on one batch of latents, and that batch."""
    torch.manual_seed(seed)
    quantizer = ResidualQuantizer(stages=4, codes=16, dim=3, decay=0.5, dead_steps=3)
    y = torch.randn(4, 3, 8, 8)
    for _ in range(20):
        quantizer(y, torch.full((4,), 4))
    return quantizer.eval(), y


def test_each_stage_picks_the_nearest_code_of_the_residual():
    quantizer, y = _fitted_quantizer()
    _, indices, contexts, _ = quantizer(y, torch.full((4,), 4))
    for k in range(4):
        residual = (y - contexts[k]).permute(0, 2, 3, 1).reshape(-1, 3)
        brute = torch.cdist(residual, quantizer.codebooks[k]).argmin(1)
        assert torch.equal(indices[:, k].reshape(-1), brute)
        assert torch.allclose(contexts[k], quantizer.dequantize(indices[:, :k]))


def test_more_residual_stages_leave_less_error():
    quantizer, y = _fitted_quantizer()
    indices = quantizer(y, torch.full((4,), 4))[1]
    errors = [float((y - quantizer.dequantize(indices[:, :n])).square().mean()) for n in range(5)]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors


def test_training_initializes_codes_from_data_and_restarts_dead_ones():
    torch.manual_seed(0)
    quantizer = ResidualQuantizer(stages=2, codes=8, dim=3, decay=0.99, dead_steps=2)
    y = 5 + torch.randn(2, 3, 4, 4)  # far from the random initial codes
    quantizer(y, torch.tensor([1, 1]))
    first = y.permute(0, 2, 3, 1).reshape(-1, 3)
    # every stage-1 code started at one of the latents (then its EMA moved it by about 1%);
    # stage 2 saw no sample, so it did not move
    assert (torch.cdist(quantizer.codebooks[0], first).min(1).values < 0.1).all()
    assert (quantizer.idle[1] == 2).all()
    # a code nobody picks for `dead_steps` steps is moved onto the data
    quantizer.codebooks[0, 3] = 1e3
    quantizer.code_sum[0, 3] = 1e3 * quantizer.cluster_size[0, 3]
    for _ in range(3):
        quantizer(y, torch.tensor([1, 1]))
    assert quantizer.codebooks[0, 3].abs().max() < 100


def test_an_unused_stage_is_left_out_of_the_reconstruction_and_commitment():
    quantizer, y = _fitted_quantizer()
    y_hat, indices, _, _ = quantizer(y, torch.tensor([1, 2, 3, 4]))
    for b in range(4):
        assert (indices[b, b + 1:] == -1).all() and (indices[b, :b + 1] >= 0).all()
        assert torch.allclose(y_hat[b], quantizer.dequantize(indices[b:b + 1, :b + 1])[0])


def test_stages_for_beta_is_monotone_with_the_right_ends():
    lo, hi, stages = 1e-4, 0.05, 12
    assert int(stages_for_beta(hi, lo, hi, stages)) == 1
    assert int(stages_for_beta(lo, lo, hi, stages)) == stages
    assert int(stages_for_beta(1.0, lo, hi, stages)) == 1
    assert int(stages_for_beta(1e-7, lo, hi, stages)) == stages
    betas = torch.logspace(math.log10(lo), math.log10(hi), 500, dtype=torch.float64)
    n = stages_for_beta(betas, lo, hi, stages)
    assert (n[1:] <= n[:-1]).all() and set(n.tolist()) == set(range(1, stages + 1))
    model = build_model("vqvae", TINY)
    assert model.stages_for_beta(torch.tensor([1e-4, 0.05])).tolist() == [3, 1]


def test_prior_of_a_stage_depends_only_on_earlier_stages():
    model = _model().eval()
    torch.manual_seed(1)
    indices = torch.randint(0, 8, (2, 3, 4, 5))
    for stage in range(3):
        logits = model.prior_logits(stage, model.dequantize(indices[:, :stage]))
        assert logits.shape == (2, 8, 4, 5)
        changed = indices.clone()
        changed[:, stage:] = (changed[:, stage:] + 1) % 8
        assert torch.equal(logits, model.prior_logits(stage, model.dequantize(changed[:, :stage])))
        if stage:  # and it does depend on them
            earlier = indices.clone()
            earlier[:, stage - 1] = (earlier[:, stage - 1] + 1) % 8
            assert not torch.equal(logits, model.prior_logits(stage, model.dequantize(earlier[:, :stage])))


def test_training_bits_are_the_coding_paths_bits():
    """The rate the loss trains is what `prior_logits` on decoded indices gives, stage by stage."""
    model = _model().eval()
    x = torch.rand(2, 3, 32, 32)
    beta = torch.tensor([1e-4, 0.05])
    with torch.no_grad():
        bits = model(x, beta)["y_bits_per_image"]
        indices = model.quantize(model.analysis(x), 3)
    for b, n in enumerate(model.stages_for_beta(beta).tolist()):
        with torch.no_grad():
                nats = sum(F.cross_entropy(model.prior_logits(k, model.dequantize(indices[b:b + 1, :k])),
                                       indices[b:b + 1, k], reduction="sum") for k in range(n))
        assert float(bits[b]) == pytest.approx(float(nats) / math.log(2), rel=1e-5)


def test_loss_is_finite_and_trains_encoder_decoder_and_prior():
    model = _model()
    model.train()
    loss, stats = rd_loss(model, torch.rand(2, 3, 32, 32), torch.tensor([1e-4, 0.01]), bf16=False)
    loss.backward()
    assert math.isfinite(loss.item()) and stats["bpp"] > 0 and stats["aux"] > 0
    for part in ("g_a", "g_s", "prior"):
        grads = [p.grad for p in getattr(model, part).parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), part
    assert not any(name.startswith("quantizer") for name, _ in model.named_parameters())


def test_beta_does_not_weigh_the_prior_bits():
    """Two βs with the same stage count give the same loss: β only chooses the stages."""
    model = _model().eval()
    x = torch.rand(1, 3, 32, 32)
    assert model.stages_for_beta(torch.tensor([2e-4])) == model.stages_for_beta(torch.tensor([1.1e-4]))
    losses = [rd_loss(model, x, torch.tensor([b]), bf16=False)[0].item() for b in (2e-4, 1.1e-4)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def test_the_side_view_reaches_the_decoder_only():
    model = _model(side_info=True).eval()
    assert model.side_info_at_decoder and not model.side_info_at_encoder
    x, beta = torch.rand(1, 3, 32, 32), torch.tensor([1e-3])
    with torch.no_grad():
        one = model(x, beta, torch.rand(1, 3, 32, 32))
        other = model(x, beta, torch.rand(1, 3, 32, 32))
    assert not torch.allclose(one["x_hat"], other["x_hat"])
    assert torch.equal(one["y_bits_per_image"], other["y_bits_per_image"])  # encoder and prior blind
    with pytest.raises(ValueError, match="side view"):
        model(x, beta)
    assert not build_model("vqvae", TINY).side_info_at_decoder


def test_weights_round_trip_with_their_config(tmp_path):
    model = _model(side_info=True)
    path = tmp_path / "vq.safetensors"
    checkpoints.export_weights(model, path, trained_steps=7)
    architecture, config, tensors = zoo.load_state(path)
    assert architecture == "vqvae" and config == model.config.to_dict()
    loaded = build_model(architecture, config)
    loaded.load_state_dict(tensors)  # strict: the codebooks and their EMA statistics included
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value.half().float()), name


def test_train_resume_and_export_with_stereo_pairs(tmp_path):
    """`flowcodec train --model vqvae` on --stereo pairs with the side view: resumes from its
    checkpoint (codebooks included) and exports weights that load."""
    def run(steps: int) -> None:
        train.main(["--model", "vqvae", "--config", json.dumps({**TINY, "side_info": True}),
                    "--data", str(DATA / "stereo" / "left"), "--stereo", str(DATA / "stereo"),
                    "--run-dir", str(tmp_path), "--steps", str(steps), "--batch", "2",
                    "--crop", "32", "--crop-width", "64", "--threads", "1", "--log-every", "1",
                    "--no-bf16"])
    run(2)
    first = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert "quantizer.codebooks" in first["model"]
    run(3)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(math.isfinite(r["loss"]) for r in log)
    out = tmp_path / "vq.safetensors"
    checkpoints.export_checkpoint(str(tmp_path / "checkpoint.pt"), str(out))
    model, state = checkpoints.load_checkpoint_model(out)
    assert state["step"] == 3 and model.config.side_info


def test_a_side_stage_grown_on_a_trained_vqvae_leaves_what_the_encoder_codes(tmp_path):
    """--init-from a plain VQ-VAE with side_info on and --train-only si_net g_s: the codebooks
    (EMA-learned buffers), g_a and the prior stay as they were, so the grown model codes the same
    indices as the plain one, which is therefore its exact separate control."""
    common = ["--data", str(DATA / "stereo" / "left"), "--batch", "2", "--crop", "32",
              "--threads", "1", "--log-every", "1", "--no-bf16"]
    train.main(["--model", "vqvae", "--config", json.dumps(TINY), "--run-dir", str(tmp_path / "a"),
                "--steps", "2", *common])
    plain = tmp_path / "plain.safetensors"
    checkpoints.export_checkpoint(str(tmp_path / "a" / "checkpoint.pt"), str(plain))
    train.main(["--model", "vqvae", "--init-from", str(plain), "--config", '{"side_info": true}',
                "--train-only", "si_net", "g_s", "--stereo", str(DATA / "stereo"),
                "--crop-width", "64", "--run-dir", str(tmp_path / "b"), "--steps", "3", *common])
    grown = tmp_path / "grown.safetensors"
    checkpoints.export_checkpoint(str(tmp_path / "b" / "checkpoint.pt"), str(grown))
    _, _, before = zoo.load_state(plain)
    _, config, after = zoo.load_state(grown)
    assert config["side_info"]
    kept = [k for k in before if k.split(".")[0] in ("quantizer", "g_a", "prior")]
    assert kept and all(torch.equal(before[k], after[k]) for k in kept)
    old_part = lambda k: after[k][tuple(slice(0, n) for n in before[k].shape)]  # noqa: E731
    assert any(not torch.equal(before[k], old_part(k)) for k in before if k.startswith("g_s"))


class _Decodes(torch.nn.Module):
    """A stand-in g_s whose first reconstruction is a given image (what a trained g_s gives)."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.image = image

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.image - 0.5


@pytest.mark.parametrize("align", [True, False])
def test_side_features_see_the_side_view_aligned(align):
    """A stereo side view shows the content d pixels to the side; the decoder finds it by block
    matching against its first reconstruction, so the features of a side view shifted by d are
    those of an unshifted one (right of the view's first d columns, which the side view does
    not show, and the features they reach). Without alignment
    (seed 004 as published) they are not."""
    model = _model(side_info=True, align_side=align).eval()
    torch.manual_seed(1)
    view = F.interpolate(torch.rand(1, 3, 16, 32), size=(64, 128), mode="bilinear")
    d = 6
    shifted = torch.cat([view[..., d:], view[..., -1:].expand(-1, -1, -1, d)], 3)  # side(c) = view(c + d)
    model.g_s = _Decodes(view)
    q = torch.zeros(1, TINY["latent_dim"], 8, 16)
    with torch.no_grad():
        same, moved = model.side_features(q, view), model.side_features(q, shifted)
    interior = (..., slice(6, None))  # latent columns ≥ 6: pixels ≥ 48, beyond si_net's reach of the lost ones
    assert torch.allclose(same[interior], moved[interior], atol=1e-4) == align


def test_a_grown_side_network_starts_as_the_trained_analysis():
    """Grown on a plain VQ-VAE, si_net starts as its g_a (`grown_copies`): features that mean
    something from step 0, while g_s's new side half starts at zero, so the grown model decodes
    exactly as the plain one did."""
    plain = _model(seed=3)
    tensors = {k: v.clone() for k, v in plain.state_dict().items()}
    grown = build_model("vqvae", {**TINY, "side_info": True})
    missing, unexpected, widened = checkpoints.load_grown(grown, tensors)
    assert not missing and not unexpected and widened == ["g_s.0.weight"]
    for key, value in plain.g_a.state_dict().items():
        assert torch.equal(grown.si_net.state_dict()[key], value), key
    x, beta = torch.rand(1, 3, 32, 32), torch.tensor([1e-3])
    with torch.no_grad():
        assert torch.equal(grown.eval()(x, beta, torch.rand(1, 3, 32, 32))["x_hat"],
                           plain.eval()(x, beta)["x_hat"])
    assert checkpoints.load_grown(build_model("vqvae", TINY), tensors)[:2] == ([], [])
