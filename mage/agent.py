"""MageAgent: MAGE behind the Agent protocol (docs/interfaces.md; harness/agent.py).

fit() runs stage 0 (IQL's V and twin Q by TD, only when the config needs a TD value: value_steps
steps), then stage 1 (tokenizer) for round(tokenizer_fraction * the remaining steps), then stage 2
(generator + inverse dynamics + adapters) for the rest; the step counter is global, so a restored
agent continues where it stopped, in whichever stage. The RTG labels of stages 1-2 are fixed when
stage 1 starts (n-step labels read the stage-0 value, frozen from then on).
"""
from __future__ import annotations

import copy
import math
from contextlib import contextmanager, nullcontext
from typing import Any, Callable

import numpy as np
import torch

from mage.config import MageConfig, resolve_config
from mage.critic import soft_update
from mage.data import Normalizer, WindowSampler, n_step_returns, returns_to_go
from mage.fast_act import FastActor
from mage.model import MageModel
from mage.policy import plan_actions
from mage.training import advantage_weights, critic_loss, generator_losses, sample_weights, tokenizer_losses
from mage.value import expectile_loss

TINY = dict(embed_dim=32, num_heads=2, num_blocks=2, codebook_size=64, codebook_dim=16, tokenizer_width=32,
            tokenizer_depth=1, adapter_dim=8, batch_size=64, horizon=16, num_scales=4, dropout=0.0,
            dead_code_restart_every=25)


class MageAgent:
    CONFIG = MageConfig  # the harness checks --set keys against its fields
    PROFILES: dict[str, dict[str, Any]] = {
        # not in paper: a tiny model that fits ~20k maze2d steps in seconds on one CPU core
        "smoke": dict(steps=200, **TINY),
        # not in paper: a real look in ~20 minutes on one CPU core (a small model over the paper's horizon
        # 24). 6,000 steps, not 2,000: on maze2d-umaze seeds 0-3 scored -2.1 on average at 2,000 steps
        # and 21.2 at 6,000 (every seed better; README "Learning checks")
        "quick": dict(steps=6000, embed_dim=64, num_heads=4, num_blocks=3, codebook_size=128, codebook_dim=16,
                      tokenizer_width=64, tokenizer_depth=2, adapter_dim=16, batch_size=64, horizon=24,
                      num_scales=6, dropout=0.1, dead_code_restart_every=100),
        # the paper's model; not in paper: 100k tokenizer + 200k generator steps (tokenizer_fraction 1/3)
        "paper": dict(steps=300_000),
    }

    def __init__(self, seed: int = 0, device: str = "cpu") -> None:
        self.seed, self.device = int(seed), torch.device(device)
        self.cfg: MageConfig | None = None
        self.model: MageModel | None = None
        self.norm: Normalizer | None = None
        self.step = 0
        self.opt1 = self.opt2 = self.opt_critic = self.opt_value = self.opt_td = None
        self.ema: torch.optim.swa_utils.AveragedModel | None = None   # stage 2's weight average (cfg.ema_decay)
        self.sample_gen = torch.Generator().manual_seed(self.seed)
        self._torch_rng = self._initial_torch_rng()
        self._cuda_rng = None
        self._in_fit = False
        self._actor: FastActor | None = None  # built lazily per batch size by act()
        self.reset(1)

    @classmethod
    def suite_overrides(cls, suite: str, dataset: str | None = None) -> dict[str, Any]:
        return {}  # MAGE's per-suite values live in the suite YAMLs (hparams.mage)

    # ------------------------------------------------------------------ building
    def _initial_torch_rng(self) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return torch.get_rng_state()

    @contextmanager
    def _own_rng(self):
        """Run with this agent's torch RNG (dropout, Gumbel noise, init) and keep the caller's intact."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self._torch_rng)
            if self._cuda_rng is not None and devices:
                torch.cuda.set_rng_state(self._cuda_rng, self.device)
            try:
                yield
            finally:
                self._torch_rng = torch.get_rng_state()
                if devices:
                    self._cuda_rng = torch.cuda.get_rng_state(self.device)

    def _build(self, obs_dim: int, act_dim: int) -> None:
        cfg = self.cfg
        self.model = MageModel(cfg, obs_dim, act_dim).to(self.device)
        self._actor = None  # a FastActor holds the old model's parameters
        self.opt1 = torch.optim.Adam(self.model.stage_parameters(1), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     fused=self.device.type == "cuda")
        self.opt2 = torch.optim.Adam(self.model.stage_parameters(2), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     fused=self.device.type == "cuda")
        if self.model.critic is not None:
            self.opt_critic = torch.optim.Adam(self.model.critic.parameters(), lr=cfg.lr)
        if self.model.return_head is not None:
            self.opt_value = torch.optim.Adam(self.model.return_head.parameters(), lr=cfg.lr)
        if self.model.td_value is not None:
            self.opt_td = torch.optim.Adam(self.model.td_value.trainable_parameters(), lr=cfg.value_lr)

    def _autocast(self):
        if self.device.type == "cuda" and self.cfg.mixed_precision:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    # ------------------------------------------------------------------ training
    def fit(self, data, config: dict[str, Any], steps: int,
            on_step: Callable[[int, dict[str, float]], None] | None = None) -> None:
        cfg = resolve_config(config)
        if self.model is not None and self.cfg.to_dict() != cfg.to_dict():
            raise ValueError("fit config differs from the restored agent's config")
        self.cfg = cfg
        if self.norm is None:
            self.norm = Normalizer.from_data(data, cfg.target_return_quantile, cfg.target_return_scale,
                                             cfg.rtg_discount, cfg.rtg_across_cuts)
        stage0_end, stage1_end = cfg.stage_ends(steps)
        if steps <= stage0_end:
            raise ValueError(f"MAGE trains {steps} steps, no more than its value_steps ({stage0_end}): "
                             f"give it more steps than value_steps")
        with self._own_rng():
            if self.model is None:
                self._build(data.obs_dim, data.act_dim)
            sampler, labelled = None, False
            self._in_fit = True
            try:
                while self.step < steps:
                    if self.step < stage0_end:
                        sampler = sampler or self._window_sampler(data, labelled=False)
                        metrics = self._value_pretrain_step(sampler)
                    else:
                        if not labelled:
                            sampler, labelled = self._window_sampler(data, labelled=True), True
                        stage = 1 if self.step < stage1_end else 2
                        metrics = self._train_step(stage, sampler)
                        if stage == 2 and cfg.ema_decay > 0:
                            self._update_ema()
                    self.step += 1
                    if self.ema is not None and self.step == steps:
                        self._act_on_ema()
                    if on_step is not None:
                        on_step(self.step, metrics)
            finally:
                self._in_fit = False

    def _update_ema(self) -> None:
        """avg <- d avg + (1 - d) w over the model's parameters after a stage-2 step (the first one copies w)."""
        if self.ema is None:
            self.ema = self._new_ema()
            self._actor = None   # acting moves to the average
        self.ema.update_parameters(self.model)

    def _new_ema(self) -> torch.optim.swa_utils.AveragedModel:
        """An exponential average (decay cfg.ema_decay) of the model's parameters, starting as a copy of them."""
        return torch.optim.swa_utils.AveragedModel(
            self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(self.cfg.ema_decay))

    def _act_on_ema(self) -> None:
        """At the last step: the model takes the averaged weights (so the final checkpoint, its evaluation and
        any later load act on them); the running average is dropped."""
        with torch.no_grad():
            for target, average in zip(self.model.parameters(), self.ema.module.parameters()):
                target.copy_(average)
        self.ema = None
        self._actor = None

    def _acting_model(self) -> MageModel:
        """The weights acting reads: the running average while fit trains stage 2 with ema_decay (periodic
        evaluations), else the model."""
        return self.ema.module if self.ema is not None else self.model

    def _window_sampler(self, data, labelled: bool) -> WindowSampler:
        """Windows of ``data``; ``labelled``: with the RTG that stages 1-2 model (rtg_estimator), which sets the
        normaliser's RTG statistics (n_step: from the stage-0 value, so only once stage 0 is done)."""
        cfg = self.cfg
        rtg_N = None
        if labelled and (cfg.rtg_estimator == "n_step" or cfg.rtg_relative):
            value_N = self._stage0_values(data)
            n = cfg.bootstrap_steps or cfg.horizon
            rtg_N = (n_step_returns(data, self.norm.gamma, n, value_N, cfg.rtg_across_cuts) if cfg.rtg_estimator == "n_step"
                     else returns_to_go(data, self.norm.gamma, cfg.rtg_across_cuts).astype(np.float64))
            if cfg.rtg_relative:
                rtg_N = rtg_N - value_N
            self.norm.set_returns(rtg_N, data.episode_starts, cfg.target_return_quantile, cfg.target_return_scale)
        return WindowSampler(data, self.norm, self.model.layout, cfg.horizon, self.device, cfg.rtg_across_cuts, rtg_N)

    @torch.no_grad()
    def _stage0_values(self, data) -> np.ndarray:
        """[N] float64 the stage-0 value V(s_t) of every row, in reward units."""
        obs = torch.as_tensor(self.norm.obs(np.asarray(data.observations, np.float32)).astype(np.float32))
        value = torch.cat([self.model.td_value(chunk.to(self.device)).float().cpu() for chunk in obs.split(65536)])
        return value[:, 0].numpy().astype(np.float64) * self.norm.value_scale

    def _value_pretrain_step(self, sampler: WindowSampler) -> dict[str, float]:
        """Stage 0: one TD step of IQL's V (td_expectile) and twin Q, on rewards in value_scale units."""
        cfg, head = self.cfg, self.model.td_value
        self.model.train()
        self.model.set_stage(0)
        batch = sampler.sample(cfg.value_batch_size, self.sample_gen)
        loss = head.loss(batch, self.norm.gamma, cfg.td_expectile, self.norm.value_scale)
        self._check_finite({"loss/td_value": loss}, loss)
        self.opt_td.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_td.step()
        head.update_targets()
        return {"loss/td_value": float(loss.detach()), "loss": float(loss.detach()), "stage": 0.0}

    def _train_step(self, stage: int, sampler: WindowSampler) -> dict[str, float]:
        cfg, model = self.cfg, self.model
        model.train()
        model.set_stage(stage)
        batch = sampler.sample(cfg.batch_size, self.sample_gen)
        weights = sample_weights(model, batch, self.norm.rtg_min, self.norm.rtg_max)
        if stage == 2 and cfg.rtg_dropout > 0:     # rows the generator sees without R_0, from the sampling generator
            batch["rtg_drop"] = (torch.rand(batch["R0"].shape[0], generator=self.sample_gen) < cfg.rtg_dropout).to(self.device)
        if stage == 2 and cfg.advantage_beta > 0:
            batch["adv_weight"] = advantage_weights(model, batch, self.norm.value_scale)
        if stage == 2 and cfg.cond_relabel:   # targets for the relabelled L_cond pass, from the sampling generator
            u = torch.rand(batch["R0"].shape, generator=self.sample_gen).to(self.device)
            batch["R0_relabel"] = self.norm.rtg_min + u * (self.norm.rtg_max - self.norm.rtg_min)
        opt = self.opt1 if stage == 1 else self.opt2
        with self._autocast():
            if stage == 1:
                loss, metrics, feats = tokenizer_losses(model, batch, weights)
            else:
                loss, metrics = generator_losses(model, batch, weights, cfg.gumbel_tau)
        self._check_finite(metrics, loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.grad_clip)
        opt.step()
        if stage == 1 and cfg.dead_code_restart_every and (self.step + 1) % cfg.dead_code_restart_every == 0:
            metrics["codebook/restarted"] = float(model.quantizer.restart_dead_codes(feats, self.sample_gen))
        if stage == 2 and model.critic is not None:
            closs = critic_loss(model, batch, self.sample_gen)
            self._check_finite({"loss/critic": closs}, closs)
            self.opt_critic.zero_grad(set_to_none=True)
            closs.backward()
            self.opt_critic.step()
            soft_update(model.critic_target, model.critic)
            metrics["loss/critic"] = closs
        if model.return_head is not None:
            for _ in range(cfg.value_updates):
                metrics["loss/value"] = self._value_step(sampler)
        metrics["loss"] = loss
        metrics["stage"] = float(stage)
        return {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in metrics.items()}

    def _value_step(self, sampler: WindowSampler) -> torch.Tensor:
        """One step of the ReturnHead V(s) (target_rule value) on its own batch, with its own optimiser."""
        cfg, head = self.cfg, self.model.return_head
        batch = sampler.sample(cfg.value_batch_size, self.sample_gen)
        loss = expectile_loss(head(batch["s0"]).float(), batch["R0"], cfg.value_expectile)
        self._check_finite({"loss/value": loss}, loss)
        self.opt_value.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_value.step()
        return loss

    def _check_finite(self, metrics: dict, loss: torch.Tensor) -> None:
        for name, v in list(metrics.items()) + [("loss", loss)]:
            v = float(v.detach()) if torch.is_tensor(v) else float(v)
            if not math.isfinite(v):
                raise FloatingPointError(f"MAGE {name} is {v} at step {self.step + 1}")

    # ------------------------------------------------------------------ acting
    def reset(self, num_envs: int) -> None:
        self.num_envs = int(num_envs)
        target = self.norm.target_return if self.norm is not None else 0.0
        self._rtg = np.full(self.num_envs, target, np.float64)
        self._plan: np.ndarray | None = None  # [B, replan_every, act_dim] normalised
        self._plan_pos = 0
        self._still_at: np.ndarray | None = None  # [B, obs_dim] z-scored: where each agent has stood still since
        self._still_steps = np.zeros(self.num_envs, np.int64)  # steps without moving or reward (stall_steps)

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("MageAgent.act called before fit or load_state_dict")
        obs = np.asarray(obs, np.float32)
        if obs.shape[0] != self.num_envs:
            self.reset(obs.shape[0])
        every = self.cfg.replan_every
        if self._plan is None or self._plan_pos >= every:
            model = self._acting_model()
            model.eval()
            obs_z = self.norm.obs(obs).astype(np.float32)
            stalled = self._stalled(obs_z)
            s0 = torch.as_tensor(obs_z, device=self.device)
            R0 = self._acting_target(s0)
            if every == 1 and self.cfg.act_backend == "fast" and self.cfg.plan_samples == 1:
                if self._actor is None or self._actor.batch_size != s0.shape[0]:
                    self._actor = FastActor(model, s0.shape[0], self.device)
                plan = self._actor.act(s0, R0)[:, None]  # deterministic: needs no RNG; bf16 handled inside
            else:
                with self._own_rng(), self._autocast():
                    plan = plan_actions(model, s0, R0, every, value_scale=self.norm.value_scale)
            self._plan = plan.float().cpu().numpy()
            if stalled.any():
                rows = torch.as_tensor(stalled, device=self.device)
                with self._own_rng(), self._autocast():
                    drawn = plan_actions(model, s0[rows], R0[rows], every, sample=True)
                self._plan[stalled] = drawn.float().cpu().numpy()
            self._plan_pos = 0
        a = self._plan[:, self._plan_pos]
        self._plan_pos += 1
        return np.clip(self.norm.unact(a), self.norm.act_low, self.norm.act_high).astype(np.float32)

    def _stalled(self, obs_z_BO: np.ndarray) -> np.ndarray:
        """[B] bool: the agents that have stayed within cfg.stall_radius (z-scored) of one point, without
        reward, for cfg.stall_steps plans (steps, when replanning every step); always False when stall_steps is 0."""
        if self.cfg.stall_steps == 0:
            return np.zeros(len(obs_z_BO), bool)
        if self._still_at is None:
            self._still_at = np.full_like(obs_z_BO, np.nan)
        moved = ~(np.linalg.norm(obs_z_BO - self._still_at, axis=1) <= self.cfg.stall_radius)  # NaN: a new episode
        self._still_at[moved] = obs_z_BO[moved]
        self._still_steps[moved] = 0
        self._still_steps[~moved] += 1
        return self._still_steps >= self.cfg.stall_steps

    def _acting_target(self, s0_BS: torch.Tensor) -> torch.Tensor:
        """Normalised R_t [B, 1] under the config's target_rule (mage/config.py)."""
        rule = self.cfg.target_rule
        if rule == "value":
            with torch.no_grad():
                return self.cfg.target_return_scale * self._acting_model().return_head(s0_BS).float()
        if rule == "td":   # the stage-0 value is in value_scale units
            with torch.no_grad():
                value = self._acting_model().td_value(s0_BS).float() * (self.norm.value_scale / self.norm.rtg_scale)
            return self.cfg.target_return_scale * value
        rtg = np.full(self.num_envs, self.norm.target_return) if rule == "fixed" else self._rtg
        if rule == "clamped":
            rtg = np.clip(rtg, self.norm.rtg_min * self.norm.rtg_scale, self.norm.rtg_max * self.norm.rtg_scale)
        return torch.as_tensor((rtg / self.norm.rtg_scale).astype(np.float32)[:, None], device=self.device)

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        rewards = np.asarray(rewards, np.float64)
        dones = np.asarray(dones, bool)
        self._rtg = (self._rtg - rewards) / self.norm.gamma  # DT's bookkeeping, undiscounted by gamma (rolled, clamped)
        self._still_steps[rewards > 0] = 0   # standing still where the reward is, is no stall
        if dones.any():
            self._still_steps[dones] = 0
            if self._still_at is not None:
                self._still_at[dones] = np.nan   # the next observation counts as a move
            self._rtg[dones] = self.norm.target_return
            self._plan_pos = self.cfg.replan_every  # a new episode starts: replan at once

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        rng = torch.get_rng_state() if self._in_fit else self._torch_rng
        state = {
            "seed": self.seed, "step": self.step,
            "config": self.cfg.to_dict() if self.cfg else None,
            "normalizer": self.norm.to_dict() if self.norm else None,
            "model": self.model.state_dict() if self.model else None,
            "opt1": self.opt1.state_dict() if self.opt1 else None,
            "opt2": self.opt2.state_dict() if self.opt2 else None,
            "opt_critic": self.opt_critic.state_dict() if self.opt_critic else None,
            "opt_value": self.opt_value.state_dict() if self.opt_value else None,
            "opt_td": self.opt_td.state_dict() if self.opt_td else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "torch_rng": rng.clone(),
            "cuda_rng": (torch.cuda.get_rng_state(self.device) if self._in_fit and self.device.type == "cuda"
                         else self._cuda_rng),
            "sample_gen": self.sample_gen.get_state(),
        }
        return copy.deepcopy(state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = copy.deepcopy(state)
        self.seed, self.step = state["seed"], state["step"]
        self.cfg = resolve_config(state["config"]) if state["config"] else None
        self.norm = Normalizer.from_dict(state["normalizer"]) if state["normalizer"] else None
        if state["model"] is not None:
            obs_dim = len(self.norm.obs_mean)
            act_dim = len(self.norm.act_low)
            with self._own_rng():
                self._build(obs_dim, act_dim)
            self.model.load_state_dict(state["model"])
            self.opt1.load_state_dict(state["opt1"])
            self.opt2.load_state_dict(state["opt2"])
            if self.opt_critic is not None:
                self.opt_critic.load_state_dict(state["opt_critic"])
            if self.opt_value is not None:
                self.opt_value.load_state_dict(state["opt_value"])
            if self.opt_td is not None:
                self.opt_td.load_state_dict(state["opt_td"])
            self.ema = None
            if state.get("ema") is not None:
                self.ema = self._new_ema()
                self.ema.load_state_dict(state["ema"])
        self._torch_rng = state["torch_rng"]
        self._cuda_rng = state["cuda_rng"]
        self.sample_gen.set_state(state["sample_gen"])
        self.reset(self.num_envs)
