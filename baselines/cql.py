"""Conservative Q-Learning (Kumar et al., NeurIPS 2020), CQL(H) on a SAC backbone: twin critics
trained by TD plus a penalty logsumexp_a Q(s, a) − Q(s, a_data) that pushes down Q on actions
the policy or a uniform proposal picks and up on dataset actions.

Faithful to the paper with CORL's algorithms/offline/cql.py as reference: tanh-Gaussian actor
(3x256, log-std offset −1), critics with ``q_hidden_layers`` x256 and orthogonal init, importance-
sampled logsumexp over 10 random + 10 current + 10 next-state policy actions, optional Lagrangian
α' (target action gap), automatic entropy tuning, Polyak targets τ = 0.005, batch 256, 1M steps.
Why no library: d3rlpy (the maintained offline-RL library) pins gymnasium==1.0.0, which cannot be
installed beside gymnasium-robotics 1.4.2 (needs gymnasium>=1.2); so this is one readable file.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import (BaselineAgent, ParamHolder, TransitionSampler, check_finite, check_ranges, mlp,
                              modified_rewards, soft_update)


@dataclass
class CQLConfig:
    hidden_dim: int = 256
    actor_layers: int = 3            # CORL TanhGaussianPolicy: three hidden layers
    q_hidden_layers: int = 3         # CORL q_n_hidden_layers (antmaze: 5)
    orthogonal_init: bool = True     # CORL configs
    discount: float = 0.99
    soft_target_update_rate: float = 0.005
    target_update_period: int = 1
    policy_lr: float = 3e-5          # CORL default (Adroit 1e-4, antmaze 1e-4)
    qf_lr: float = 3e-4
    batch_size: int = 256
    alpha_multiplier: float = 1.0
    use_automatic_entropy_tuning: bool = True
    backup_entropy: bool = False
    bc_steps: int = 0                # CORL: policy does BC for the first bc_steps
    cql_n_actions: int = 10
    cql_importance_sample: bool = True
    cql_lagrange: bool = False
    cql_target_action_gap: float = -1.0
    cql_temp: float = 1.0
    cql_alpha: float = 10.0
    cql_max_target_backup: bool = False
    cql_clip_diff_min: float = -math.inf
    cql_clip_diff_max: float = math.inf
    normalize_reward: bool = False   # CORL: 1000/(max-min return) scaling (locomotion)
    reward_scale: float = 1.0        # CORL antmaze: 10
    reward_bias: float = 0.0         # CORL antmaze: -5

    def __post_init__(self) -> None:
        check_ranges(self, positive=("hidden_dim", "actor_layers", "q_hidden_layers", "policy_lr", "qf_lr", "batch_size",
                                     "cql_n_actions", "target_update_period", "cql_temp"),
                     fractions=("discount", "soft_target_update_rate"))


def init_weights(net: nn.Sequential, orthogonal: bool) -> None:
    """CORL init_module_weights: orthogonal (gain √2) hidden layers if asked; last layer gain 1e-2."""
    linears = [m for m in net if isinstance(m, nn.Linear)]
    if orthogonal:
        for layer in linears[:-1]:
            nn.init.orthogonal_(layer.weight, gain=math.sqrt(2))
            nn.init.zeros_(layer.bias)
        nn.init.orthogonal_(linears[-1].weight, gain=1e-2)
    else:
        nn.init.xavier_uniform_(linears[-1].weight, gain=1e-2)
    nn.init.zeros_(linears[-1].bias)


class TanhGaussianPolicy(nn.Module):
    """π(a|s) = tanh(N(μ(s), σ(s))); log σ = log_std_raw − 1, clamped to [−20, 2] (CORL)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.net = mlp(obs_dim, 2 * act_dim, hidden, layers)
        init_weights(self.net, orthogonal=False)
        self.act_dim = act_dim

    def forward(self, obs_BD: torch.Tensor, repeat: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled actions [B(, R), A] in (−1, 1) and their log-probabilities [B(, R)]."""
        if repeat is not None:
            obs_BD = obs_BD.unsqueeze(1).expand(-1, repeat, -1)
        mean, log_std = self._mean_log_std(obs_BD)
        normal = torch.distributions.Normal(mean, log_std.exp())
        pre_tanh = normal.rsample()
        action = torch.tanh(pre_tanh)
        log_prob = (normal.log_prob(pre_tanh) - 2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))).sum(-1)
        return action, log_prob

    def log_prob(self, obs_BD: torch.Tensor, act_BA: torch.Tensor) -> torch.Tensor:
        mean, log_std = self._mean_log_std(obs_BD)
        act_BA = act_BA.clamp(-1 + 1e-6, 1 - 1e-6)
        pre_tanh = torch.atanh(act_BA)
        normal = torch.distributions.Normal(mean, log_std.exp())
        return (normal.log_prob(pre_tanh) - torch.log1p(-act_BA ** 2 + 1e-6)).sum(-1)

    def deterministic(self, obs_BD: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self._mean_log_std(obs_BD)[0])

    def _mean_log_std(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(obs).split(self.act_dim, dim=-1)
        return mean, (log_std - 1.0).clamp(-20.0, 2.0)


class Critic(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int, layers: int, orthogonal: bool) -> None:
        super().__init__()
        self.net = mlp(obs_dim + act_dim, 1, hidden, layers)
        init_weights(self.net, orthogonal)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Q [B] for obs [B, D], act [B, A]; Q [B, R] for act [B, R, A] (obs repeated)."""
        if act.dim() == 3:
            obs = obs.unsqueeze(1).expand(-1, act.shape[1], -1)
        return self.net(torch.cat([obs, act], -1)).squeeze(-1)


def cql_penalty(q_data: torch.Tensor, q_rand: torch.Tensor, q_curr: torch.Tensor, q_next: torch.Tensor,
                logp_curr: torch.Tensor, logp_next: torch.Tensor, act_dim: int, importance_sample: bool,
                temp: float) -> torch.Tensor:
    """[B] logsumexp over proposal actions of Q minus Q on the data action (CQL(H)).

    q_data [B]; q_rand, q_curr, q_next, logp_curr, logp_next [B, R]. Positive when the
    proposals' Q exceeds the data action's, so minimising it favours in-distribution actions."""
    if importance_sample:
        random_density = math.log(0.5 ** act_dim)
        cat = torch.cat([q_rand - random_density, q_next - logp_next, q_curr - logp_curr], 1)
    else:
        cat = torch.cat([q_rand, q_data.unsqueeze(1), q_next, q_curr], 1)
    return torch.logsumexp(cat / temp, dim=1) * temp - q_data


class CQLAgent(BaselineAgent):
    """CQL agent (Agent protocol, harness/agent.py); acts with tanh(μ(s))."""

    METHOD = "cql"
    CONFIG = CQLConfig
    PROFILES = {
        "smoke": {"steps": 200, "hidden_dim": 32, "batch_size": 64},
        "quick": {"steps": 10_000},  # not in CORL: minutes on CPU
        "paper": {"steps": 1_000_000},  # CORL max_timesteps
    }

    def _build_networks(self) -> None:
        c = self.config
        self.actor = TanhGaussianPolicy(self.obs_dim, self.act_dim, c.hidden_dim, c.actor_layers).to(self.device)
        self.critics = nn.ModuleList(
            Critic(self.obs_dim, self.act_dim, c.hidden_dim, c.q_hidden_layers, c.orthogonal_init) for _ in range(2)
        ).to(self.device)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.zeros((), device=self.device))
        self.log_alpha_prime = nn.Parameter(torch.ones((), device=self.device))  # CORL Scalar(1.0)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=c.policy_lr)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=c.qf_lr)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=c.policy_lr)
        self.alpha_prime_optimizer = torch.optim.Adam([self.log_alpha_prime], lr=c.qf_lr)
        self.target_entropy = -float(self.act_dim)

    def _attach_data(self, data: Any) -> None:
        c = self.config
        rewards = modified_rewards(data, c.reward_scale, c.reward_bias, c.normalize_reward)
        self.sampler = TransitionSampler(data, self.normaliser, rewards, self.device)

    def _min_q(self, critics: nn.ModuleList, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return torch.min(critics[0](obs, act), critics[1](obs, act))

    def _train_step(self, step: int) -> dict[str, float]:
        c = self.config
        obs, actions, rewards, next_obs, dones = self.sampler.sample(c.batch_size)
        new_actions, log_pi = self.actor(obs)

        # SAC temperature
        if c.use_automatic_entropy_tuning:
            alpha_loss = -(self.log_alpha * (log_pi + self.target_entropy).detach()).mean()
            alpha = self.log_alpha.exp().detach() * c.alpha_multiplier
        else:
            alpha_loss = obs.new_zeros(())
            alpha = obs.new_tensor(c.alpha_multiplier)

        # policy: BC warm-up for bc_steps, then max Q with entropy
        if step <= c.bc_steps:
            policy_loss = (alpha * log_pi - self.actor.log_prob(obs, actions)).mean()
        else:
            policy_loss = (alpha * log_pi - self._min_q(self.critics, obs, new_actions)).mean()

        # critics: TD + conservative penalty
        q_pred = [critic(obs, actions) for critic in self.critics]
        with torch.no_grad():
            if c.cql_max_target_backup:
                next_a, next_logp = self.actor(next_obs, repeat=c.cql_n_actions)
                target_q, best = self._min_q(self.target_critics, next_obs, next_a).max(-1)
                next_logp = next_logp.gather(-1, best.unsqueeze(-1)).squeeze(-1)
            else:
                next_a, next_logp = self.actor(next_obs)
                target_q = self._min_q(self.target_critics, next_obs, next_a)
            if c.backup_entropy:
                target_q = target_q - alpha * next_logp
            td_target = rewards + (1.0 - dones) * c.discount * target_q
            rand_a = torch.empty(c.batch_size, c.cql_n_actions, self.act_dim, device=self.device).uniform_(-1, 1)
            curr_a, curr_logp = self.actor(obs, repeat=c.cql_n_actions)
            next_pa, next_plogp = self.actor(next_obs, repeat=c.cql_n_actions)
        td_losses, gaps = [], []
        for critic, q in zip(self.critics, q_pred):
            td_losses.append(F.mse_loss(q, td_target))
            penalty = cql_penalty(q, critic(obs, rand_a), critic(obs, curr_a), critic(obs, next_pa),
                                  curr_logp, next_plogp, self.act_dim, c.cql_importance_sample, c.cql_temp)
            gaps.append(penalty.clamp(c.cql_clip_diff_min, c.cql_clip_diff_max).mean())
        if c.cql_lagrange:
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
            cql_losses = [alpha_prime * c.cql_alpha * (g - c.cql_target_action_gap) for g in gaps]
            alpha_prime_loss = -(cql_losses[0] + cql_losses[1]) * 0.5
            self.alpha_prime_optimizer.zero_grad()
            alpha_prime_loss.backward(retain_graph=True)
            self.alpha_prime_optimizer.step()
        else:
            cql_losses = [g * c.cql_alpha for g in gaps]
            alpha_prime_loss = obs.new_zeros(())
        qf_loss = td_losses[0] + td_losses[1] + cql_losses[0] + cql_losses[1]
        metrics = check_finite(step, policy_loss=policy_loss, qf_loss=qf_loss, alpha_loss=alpha_loss,
                               alpha_prime_loss=alpha_prime_loss)
        metrics["cql_gap"] = float((gaps[0] + gaps[1]).detach()) / 2

        if c.use_automatic_entropy_tuning:
            self.alpha_optimizer.zero_grad()
            alpha_loss.backward()
            self.alpha_optimizer.step()
        self.actor_optimizer.zero_grad()
        policy_loss.backward()
        self.actor_optimizer.step()
        self.critic_optimizer.zero_grad()
        qf_loss.backward()
        self.critic_optimizer.step()
        if step % c.target_update_period == 0:
            soft_update(self.target_critics, self.critics, c.soft_target_update_rate)
        return metrics

    def _act_unit(self, obs_BD: torch.Tensor) -> torch.Tensor:
        return self.actor.deterministic(obs_BD)

    def _components(self) -> dict[str, Any]:
        return {"actor": self.actor, "critics": self.critics, "target_critics": self.target_critics,
                "log_alpha": ParamHolder(self.log_alpha), "log_alpha_prime": ParamHolder(self.log_alpha_prime),
                "actor_optimizer": self.actor_optimizer, "critic_optimizer": self.critic_optimizer,
                "alpha_optimizer": self.alpha_optimizer, "alpha_prime_optimizer": self.alpha_prime_optimizer}
