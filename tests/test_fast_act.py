"""FastActor (mage/fast_act.py) gives the eager path's actions (mage.policy.plan_actions, steps=1)."""
from functools import cache

import pytest
import torch

from mage.config import MageConfig
from mage.fast_act import FastActor
from mage.model import MageModel
from mage.policy import plan_actions
from mage.training import generator_losses

OBS_DIM, ACT_DIM, HORIZON = 11, 3, 16
SMALL = dict(embed_dim=32, num_heads=2, num_blocks=2, codebook_size=64, codebook_dim=16, tokenizer_width=32,
             tokenizer_depth=1, adapter_dim=8, horizon=HORIZON, num_scales=4, dropout=0.1, batch_size=32)


def random_batch(batch: int, width: int, gen: torch.Generator) -> dict:
    """A stage-2 batch of random (normalised) windows: enough to move every generator weight off its init."""
    r = lambda *shape: torch.randn(*shape, generator=gen)
    return {"window": r(batch, HORIZON, width), "s0": r(batch, OBS_DIM), "R0": torch.rand(batch, 1, generator=gen),
            "a0": r(batch, ACT_DIM).tanh(), "s1": r(batch, OBS_DIM)}


@cache
def trained_once(**overrides) -> MageModel:
    """trained_model(**overrides) built once per config for the tests that only read it."""
    return trained_model(**overrides)


def trained_model(steps: int = 3, **overrides) -> MageModel:
    """A small MAGE after a few stage-2 Adam steps (training mode, dropout on), then left in train mode:
    FastActor must not depend on the module mode."""
    torch.manual_seed(0)
    model = MageModel(MageConfig(**{**SMALL, **overrides}), OBS_DIM, ACT_DIM)
    model.set_stage(2)
    opt = torch.optim.Adam(model.stage_parameters(2), lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(steps):
        batch = random_batch(32, model.layout.width, gen)
        if model.cfg.rtg_dropout > 0:   # the null embedding of R_0 learns too
            batch["rtg_drop"] = torch.rand(32, generator=gen) < model.cfg.rtg_dropout
        loss, _ = generator_losses(model, batch, None, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def action_head(model: MageModel) -> torch.nn.Module:
    """The inverse-dynamics head the config acts with."""
    return model.explicit_inverse if model.cfg.inverse_dynamics == "explicit" else model.latent_inverse


def eager_actions(model: MageModel, s0: torch.Tensor, R0: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return plan_actions(model, s0, R0, 1)[:, 0]
    finally:
        model.train(was_training)


CONFIGS = [
    pytest.param({}, id="paper-defaults-small"),
    pytest.param({"num_scales": 1}, id="K=1"),
    pytest.param({"inverse_dynamics": "latent"}, id="latent-inverse"),
    pytest.param({"adapter_condition": False}, id="unconditioned-adapters"),
    pytest.param({"rtg_in_fine_scales": False}, id="no-rtg-in-fine-scales"),
    pytest.param({"scheme": "a"}, id="scheme-a-decoded-actions"),
    pytest.param({"inverse_dynamics": "explicit", "explicit_from": "observed", "adapter_condition": True},
                 id="explicit-from-observed-conditioned-adapters"),
    pytest.param({"rtg_dropout": 0.5, "guidance": 3.0}, id="guided"),
    pytest.param({"rtg_dropout": 0.5, "guidance": 2.0, "rtg_in_fine_scales": False}, id="guided-no-rtg-in-fine-scales"),
    pytest.param({"plan_decoder": "anchored"}, id="anchored-plan"),
    pytest.param({"plan_decoder": "base"}, id="base-decoder-plan"),
    pytest.param({"plan_decoder": "switched", "target_rule": "value"}, id="switched-decoder-plan"),
]


@pytest.mark.parametrize("overrides", CONFIGS)
@pytest.mark.parametrize("batch", [1, 7])
def test_fast_actor_matches_eager_on_cpu(overrides, batch):
    model = trained_once(**overrides)
    gen = torch.Generator().manual_seed(batch)
    actor = FastActor(model, batch, "cpu")
    for _ in range(2):  # the cache is reused: the second call must not see the first one's keys
        s0, R0 = torch.randn(batch, OBS_DIM, generator=gen), torch.rand(batch, 1, generator=gen)
        fast = actor.act(s0, R0)
        assert fast.shape == (batch, ACT_DIM)
        torch.testing.assert_close(fast, eager_actions(model, s0, R0), atol=1e-5, rtol=0)


def test_fast_actor_follows_training_updates():
    """The actor uses the live parameters: after another optimiser step it matches the new eager actions."""
    model = trained_model(steps=2)
    actor = FastActor(model, 3, "cpu")
    s0, R0 = torch.randn(3, OBS_DIM), torch.rand(3, 1)
    before = actor.act(s0, R0)
    with torch.no_grad():
        action_head(model).net[-1].bias.add_(0.5)
    after = actor.act(s0, R0)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, eager_actions(model, s0, R0), atol=1e-5, rtol=0)


def test_bf16_mirrors_follow_in_place_updates():
    """The bf16 weight copies (CUDA's default, here forced on CPU) are refreshed from the live parameters."""
    model = trained_model(steps=1)
    s0, R0 = torch.randn(4, OBS_DIM), torch.rand(4, 1)
    old_actor = FastActor(model, 4, "cpu", bf16=True)
    before = old_actor.act(s0, R0)
    with torch.no_grad():
        for p in model.generator.parameters():
            p.mul_(1.5)
    after = old_actor.act(s0, R0)
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, FastActor(model, 4, "cpu", bf16=True).act(s0, R0), atol=0, rtol=0)


def test_fast_actor_rejects_wrong_batch():
    actor = FastActor(trained_model(steps=1), 4, "cpu")
    with pytest.raises(ValueError, match="B=4"):
        actor.act(torch.zeros(5, OBS_DIM), torch.zeros(5, 1))


def test_cuda_graph_needs_cuda():
    with pytest.raises(ValueError, match="CUDA"):
        FastActor(trained_model(steps=1), 2, "cpu", cuda_graph=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("overrides", [{}, {"num_scales": 1}, {"inverse_dynamics": "latent"}])
@pytest.mark.parametrize("batch", [1, 7])
def test_fast_actor_matches_eager_on_cuda(overrides, batch):
    """fp32 + CUDA graph == eager fp32 (tight); bf16 + CUDA graph close to eager under bf16 autocast."""
    model = trained_model(**overrides).cuda()
    gen = torch.Generator().manual_seed(batch)
    s0 = torch.randn(batch, OBS_DIM, generator=gen).cuda()
    R0 = torch.rand(batch, 1, generator=gen).cuda()
    exact = FastActor(model, batch, "cuda", bf16=False, cuda_graph=True)
    for _ in range(2):  # capture, then replay
        torch.testing.assert_close(exact.act(s0, R0), eager_actions(model, s0, R0), atol=1e-4, rtol=0)
    fast = FastActor(model, batch, "cuda")  # defaults on CUDA: bf16 + graph
    assert fast.dtype == torch.bfloat16 and fast.use_graph
    with torch.autocast("cuda", dtype=torch.bfloat16):
        eager_bf16 = eager_actions(model, s0, R0)
    # bf16 rounding can flip a near-tied token; the actions stay close in [-1, 1]
    assert (fast.act(s0, R0) - eager_bf16.float()).abs().mean() < 0.05
    with torch.no_grad():  # an optimiser-like in-place update reaches the graph through the bf16 mirrors
        action_head(model).net[-1].bias.add_(0.5)
        for p in model.generator.parameters():
            p.mul_(1.01)
    torch.testing.assert_close(exact.act(s0, R0), eager_actions(model, s0, R0), atol=1e-4, rtol=0)
