"""Block-causal multi-scale transformer: mask semantics and KV-cache equivalence."""
import pytest
import torch

from mage.config import resolve_config
from mage.generator import block_causal_mask
from mage.model import MageModel
from mage.policy import generate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(**overrides) -> MageModel:
    torch.manual_seed(0)
    base = dict(embed_dim=32, num_heads=4, num_blocks=2, codebook_size=16, codebook_dim=8, horizon=12,
                num_scales=4, dropout=0.0, tokenizer_width=16, tokenizer_depth=1)
    cfg = resolve_config({**base, **overrides})
    model = MageModel(cfg, obs_dim=3, act_dim=2).eval()
    model.quantizer.codebook.weight.data.normal_()
    return model


def _batch(model: MageModel) -> dict[str, torch.Tensor]:
    """A fixed random stage-2 batch of 8 windows for _model's shapes (obs 3, act 2)."""
    g = torch.Generator().manual_seed(0)
    return {"window": torch.randn(8, model.cfg.horizon, model.layout.width, generator=g),
            "s0": torch.randn(8, 3, generator=g), "R0": torch.rand(8, 1, generator=g),
            "a0": torch.rand(8, 2, generator=g) * 2 - 1, "s1": torch.randn(8, 3, generator=g)}


def _tokens(model, batch, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, model.cfg.codebook_size, (batch, l), generator=g) for l in model.cfg.scales]


def test_mask_lets_a_scale_see_coarser_scales_and_itself_only():
    mask = block_causal_mask((1, 2, 3))
    levels = [0, 1, 1, 2, 2, 2]
    for i, li in enumerate(levels):
        for j, lj in enumerate(levels):
            assert bool(mask[i, j]) == (lj <= li)
    no_rtg = block_causal_mask((1, 2, 3), rtg_in_fine_scales=False)
    assert not no_rtg[1:, 0].any() and bool(no_rtg[0, 0]) and bool(no_rtg[3, 1])


@pytest.mark.parametrize("rtg_in_fine_scales", [True, False])
def test_changing_a_token_of_scale_k_changes_no_logit_of_scales_up_to_k(rtg_in_fine_scales):
    model = _model(rtg_in_fine_scales=rtg_in_fine_scales)
    q, gen, scales = model.quantizer, model.generator, model.cfg.scales
    cond = torch.randn(2, 4)
    tokens = _tokens(model, 2, 0)
    with torch.no_grad():
        base = gen(cond, q.teacher_forcing_inputs(tokens), model.rtg_index)
        for k in range(len(scales)):
            changed = [t.clone() for t in tokens]
            changed[k] = (changed[k] + 1) % model.cfg.codebook_size
            out = gen(cond, q.teacher_forcing_inputs(changed), model.rtg_index)
            end = sum(scales[:k + 1])
            assert torch.equal(out[:, :end], base[:, :end]), k
            if k + 1 < len(scales):
                assert not torch.allclose(out[:, end:], base[:, end:]), k


@pytest.mark.parametrize("overrides", [{}, {"rtg_in_fine_scales": False}, {"num_scales": 1}, {"rtg_mode": "none"}])
def test_kv_cache_generation_matches_the_full_forward(overrides):
    model = _model(**overrides)
    cond = torch.randn(3, 4)
    tokens = _tokens(model, 3, 1)
    with torch.no_grad():
        full = model.generator(cond, model.quantizer.teacher_forcing_inputs(tokens), model.rtg_index)
        _, cached, f_hat = generate(model, cond, tokens_given=tokens)
    torch.testing.assert_close(torch.cat(cached, dim=1), full, atol=1e-5, rtol=1e-5)
    expected = torch.stack(model.quantizer.tokens_to_scale_features(tokens)).sum(0)
    torch.testing.assert_close(f_hat, expected, atol=1e-5, rtol=1e-5)
    # greedy generation is consistent with its own logits
    greedy, logits, _ = generate(model, cond)
    assert all(torch.equal(t, lg.argmax(-1)) for t, lg in zip(greedy, logits))


def test_cond_span_window_holds_every_plan_step_to_the_data_window():
    """L_cond (cond_span "first", eq. 7) sees only step 0 of the data window; "window" sees every step."""
    from mage.training import generator_losses

    first, window = _model(cond_span="first"), _model(cond_span="window")
    H = first.cfg.horizon
    batch = _batch(first)
    later = {**batch, "window": batch["window"].clone()}
    later["window"][:, 1:] += 3.0
    start = {**batch, "window": batch["window"].clone()}
    start["window"][:, 0] += 3.0

    def cond_loss(model, b):
        torch.manual_seed(5)   # the same Gumbel draws for every call
        return generator_losses(model, b, None, 1.0)[1]["loss/cond"].item()

    base_first, base_window = cond_loss(first, batch), cond_loss(window, batch)
    # moving later steps by 3 adds ~9 to each of their squared errors; under "first" it only moves the
    # ground-truth tokens the generator is teacher-forced with, hence the small tolerance
    assert abs(cond_loss(first, later) - base_first) < 0.01 * base_first
    assert cond_loss(first, start) > base_first + 1.0
    assert cond_loss(window, later) > base_window + 1.0
    assert cond_loss(window, start) > base_window + 9.0 / H * 0.5   # step 0 is 1 of H steps of the mean


def test_ce_weighting_scale_averages_each_scale_alike():
    """position: L_CE is the mean over all L token positions; scale: the mean of each scale's mean,
    so scale 1's one token weighs 1/K of the loss instead of 1/L."""
    import torch.nn.functional as F
    from mage.training import generator_losses, ground_truth_tokens

    per_position, per_scale = _model(ce_weighting="position"), _model(ce_weighting="scale")
    batch = _batch(per_position)
    tokens = ground_truth_tokens(per_position, batch)
    logits = per_position.generator(per_position.condition(batch["s0"], batch["R0"]),
                                    per_position.quantizer.teacher_forcing_inputs(tokens), per_position.rtg_index)
    ce_BL = F.cross_entropy(logits.transpose(1, 2), torch.cat(tokens, 1), reduction="none")
    by_scale = torch.stack([c.mean() for c in torch.split(ce_BL, list(per_position.cfg.scales), 1)])
    assert len(set(per_position.cfg.scales)) > 1
    got_position = generator_losses(per_position, batch, None, 1.0)[1]["loss/ce"]
    got_scale = generator_losses(per_scale, batch, None, 1.0)[1]["loss/ce"]
    torch.testing.assert_close(got_position, ce_BL.mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_scale, by_scale.mean(), rtol=1e-5, atol=1e-6)
    assert abs(got_scale - got_position) > 1e-4


def test_advantage_weights_are_iqls_clipped_exp_beta_a_in_reward_units():
    from mage.training import EXP_ADV_MAX, advantage_weights

    model = _model(advantage_beta=3.0, value_steps=1)
    batch = _batch(model)
    assert advantage_weights(_model(), batch, 50.0) is None   # advantage_beta 0: off
    with torch.no_grad():
        adv = (model.td_value.q(batch["s0"], batch["a0"]) - model.td_value(batch["s0"])[:, 0]) * 50.0
    got = advantage_weights(model, batch, 50.0)
    torch.testing.assert_close(got, torch.exp(3.0 * adv).clamp(max=EXP_ADV_MAX))
    assert got.shape == (8,) and (got > 0).all() and got.max() <= EXP_ADV_MAX


def test_advantage_weights_reshape_the_plan_losses_but_not_the_inverse_dynamics():
    """With all weight on window 0, L_CE and L_cond are window 0's alone; L_inv stays the batch mean."""
    from mage.training import generator_losses

    model = _model(advantage_beta=3.0, value_steps=1)
    batch = _batch(model)
    torch.manual_seed(0)
    plain = generator_losses(model, batch, None, 1.0)[1]
    torch.manual_seed(0)
    only_first = generator_losses(model, {**batch, "adv_weight": torch.eye(8)[0]}, None, 1.0)[1]
    torch.manual_seed(0)
    first_alone = generator_losses(model, {k: v[:1] for k, v in batch.items()}, None, 1.0)[1]
    torch.testing.assert_close(only_first["loss/inv"], plain["loss/inv"])
    torch.testing.assert_close(only_first["loss/ce"], first_alone["loss/ce"], rtol=1e-5, atol=1e-6)
    assert abs(only_first["loss/ce"] - plain["loss/ce"]) > 1e-4


def test_drawn_tokens_follow_the_softmax_of_the_logits_over_the_temperature():
    """generate(sample=True, temperature=T) draws each token from softmax(l / T): the first scale's single
    token over 4,000 draws matches that distribution, a tiny T gives the greedy tokens at every scale, and
    candidate_plans draws its plans at cfg.plan_temperature."""
    from mage.policy import candidate_plans
    model = _model()
    model.generator.head.weight.data.mul_(3.0)   # logits far from uniform, so T visibly reshapes them
    cond = torch.randn(1, 4).repeat(4000, 1)
    greedy, logits, _ = generate(model, cond[:1])
    for T in (1.0, 2.0):
        torch.manual_seed(1)
        drawn, _, _ = generate(model, cond, sample=True, temperature=T)
        counts = torch.bincount(drawn[0][:, 0], minlength=model.cfg.codebook_size).float() / len(cond)
        expected = torch.softmax(logits[0][0, 0].float() / T, dim=-1)
        assert (counts - expected).abs().sum() / 2 < 0.04, T        # total variation distance
    at_one, at_two = (torch.softmax(logits[0][0, 0].float() / T, dim=-1) for T in (1.0, 2.0))
    assert (at_one - at_two).abs().sum() / 2 > 0.15     # so the draws above tell T = 1 from T = 2
    torch.manual_seed(1)
    cold, _, _ = generate(model, cond[:8], sample=True, temperature=1e-6)
    for k, tokens in enumerate(cold):
        assert torch.equal(tokens, greedy[k].expand_as(tokens)), k
    s0, R0 = torch.randn(3, 3), torch.rand(3, 1)
    model.cfg.plan_temperature = 1e-6
    x_hat, _ = candidate_plans(model, s0, R0, 4)                  # the greedy plan and 3 cold draws
    torch.testing.assert_close(x_hat.view(4, 3, *x_hat.shape[1:]), x_hat[:3].expand(4, *x_hat[:3].shape))
    model.cfg.plan_temperature = 1.0
    torch.manual_seed(1)
    x_hot, _ = candidate_plans(model, s0, R0, 4)
    assert not torch.allclose(x_hot[3:], x_hot[:3].repeat(3, 1, 1))
    with pytest.raises(ValueError, match="plan_temperature"):
        resolve_config({"plan_temperature": 0.0})
