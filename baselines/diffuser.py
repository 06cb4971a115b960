"""Diffuser (Janner et al. 2022, "Planning with Diffusion for Flexible Behavior Synthesis") as an Agent.

What the library gives (Hugging Face diffusers 0.42.1):
- ``UNet1DModel`` configured as Janner's ``TemporalUnet`` (the same layout diffusers' own converter
  for the released Diffuser checkpoints uses): ``DownResnetBlock1D`` x len(dim_mults),
  ``MidResTemporalBlock1D``, ``UpResnetBlock1D`` x (len(dim_mults) - 1), ``OutConv1DBlock``; two
  residual temporal blocks (kernel 5, GroupNorm(8), Mish) per level, sinusoidal time embedding + MLP.
  In = out channels = act_dim + obs_dim (a transition [a, s], the original's order).
- ``UNet1DModel`` configured as Janner's ``ValueFunction`` (every block downsamples,
  ``ValueFunctionMidBlock1D``, ``ValueFunction`` output head) for value guidance.
- ``DDPMScheduler`` with the original's cosine schedule (``squaredcos_cap_v2``), x0 prediction
  (``prediction_type="sample"``, the original's ``predict_epsilon=False``), ``add_noise`` for
  training and ``step`` for the reverse process (posterior mean + fixed-small variance).

What we wrote (following github.com/jannerm/diffuser): trajectory windows and normalisers
(datasets/sequence.py, normalization.py), the weighted L2 loss with ``action_weight`` on a0
(models/helpers.py), inpainting of conditioned states after every step (``apply_conditioning``),
value-function training on the discounted return from a window's start of noised windows
(``ValueDataset`` / ``ValueDiffusion``), guided sampling (``n_step_guided_p_sample``: gradient steps
on the value scaled by the posterior variance, ``n_guide_steps``, ``scale``, ``t_stopgrad``), picking
the best of ``plan_samples`` plans by value, the maze2d plan follower (scripts/plan_maze2d.py), EMA.
diffusers' experimental ``ValueGuidedRLPipeline`` is not used: it needs a D4RL env object, plans
one observation at a time, scales gradients by a standard deviation where the original uses the
variance, and has no goal inpainting.

Two modes, as the paper has them:
- goal inpainting (maze suites: ``goal_xy`` or ``goal_obs_slice`` set): the plan's first state is
  the current observation, its last state the goal at rest; one plan per episode, followed by the
  original's controller on planned states: a = (x_{k+1} - x) + (v_{k+1} - v).
- value guidance (reward-driven suites): the first state is the current observation; a value
  function guides sampling; the first action of the best plan is taken, replanning every
  ``replan_every`` steps (the original replans every step).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import yaml
from diffusers import DDPMScheduler, UNet1DModel

from baselines.common import CONFIG_DIR, check_finite, check_ranges, suite_overrides_from_yaml

CONFIG_FILE = CONFIG_DIR / "diffuser.yaml"


@dataclass
class DiffuserConfig:
    """Defaults: the original repository's config/locomotion.py ``base`` (value guidance)."""
    # model and diffusion
    horizon: int = 32                        # transitions per plan
    n_diffusion_steps: int = 20
    dim: int = 32                            # U-Net base channels
    dim_mults: tuple[int, ...] = (1, 2, 4, 8)
    clip_denoised: bool = False              # clip predicted x0 to [-1, 1] (maze2d: True, limits normaliser)
    normalizer: str = "gaussian"             # gaussian | limits (maze2d: limits, to [-1, 1])
    use_padding: bool = True                 # windows may run past an episode's end (maze2d: False)
    # training
    batch_size: int = 32
    learning_rate: float = 2e-4
    gradient_accumulate_every: int = 2
    ema_decay: float = 0.995
    step_start_ema: int = 2000               # original Trainer: EMA copies the model before this step
    update_ema_every: int = 10               # original Trainer
    action_weight: float = 10.0              # loss weight of the first action (maze2d: 1)
    loss_discount: float = 1.0               # loss weight discount**t over plan steps
    # value function (config/locomotion.py `values`; the planner loads the d0.997 value model)
    value_discount: float = 0.997
    termination_penalty: float = -100.0      # added to the reward of a terminal step for value targets
    # planning (config/locomotion.py `plan`)
    n_guide_steps: int = 2                   # 0 = no value function (goal inpainting only)
    scale: float = 0.1
    t_stopgrad: int = 2
    scale_grad_by_std: bool = True
    plan_samples: int = 64                   # plans sampled per episode; the highest value is followed
    replan_every: int = 1                    # value guidance: env steps between plans (goal inpainting plans once per episode)
    # goal inpainting (maze suites)
    goal_xy: list[float] | None = None       # fixed goal position (maze2d)
    goal_obs_slice: list[int] | None = None  # [start, stop] of the goal inside the observation (multi2d, ogbench)
    position_slice: list[int] = field(default_factory=lambda: [0, 2])  # not in paper: where a maze observation keeps (x, y)

    def __post_init__(self) -> None:
        self.dim_mults = tuple(int(m) for m in self.dim_mults)
        check_ranges(self, positive=("horizon", "n_diffusion_steps", "dim", "batch_size", "learning_rate",
                                     "gradient_accumulate_every", "update_ema_every", "plan_samples", "replan_every"),
                     fractions=("ema_decay", "value_discount"))
        if self.normalizer not in ("gaussian", "limits"):
            raise ValueError(f"Diffuser normalizer must be gaussian or limits, not {self.normalizer!r}")
        levels = len(self.dim_mults) - 1
        if self.horizon % (2 ** levels):
            raise ValueError(f"Diffuser horizon {self.horizon} must be divisible by 2**{levels} (dim_mults {self.dim_mults})")
        if self.dim % 8:
            raise ValueError(f"Diffuser dim {self.dim} must be a multiple of 8 (GroupNorm with 8 groups)")
        if self.n_guide_steps and (self.dim * self.dim_mults[-1]) % 32:
            raise ValueError("Diffuser value function needs dim * dim_mults[-1] to be a multiple of 32 (GroupNorm in its head)")
        if self.n_guide_steps and _value_output_length(self.horizon, len(self.dim_mults)) != 1:
            raise ValueError(f"Diffuser value function needs horizon <= {2 ** (len(self.dim_mults) + 2)} "
                             f"for dim_mults {self.dim_mults}, got {self.horizon}")


def _validated_config(overrides: dict[str, Any]) -> DiffuserConfig:
    """The defaults updated by ``overrides`` (its ``__post_init__`` checks the values); ValueError for an unknown key."""
    known = {f.name for f in dataclasses.fields(DiffuserConfig)}
    for key in overrides:
        if key not in known:
            raise ValueError(f"unknown Diffuser config key {key!r}")
    return dataclasses.replace(DiffuserConfig(), **overrides)


def _value_output_length(horizon: int, levels: int) -> int:
    """Temporal length left after the value network's downsamplings (each: stride 2, pad 1, kernel 3)."""
    for _ in range(levels + 2):
        horizon = (horizon - 1) // 2 + 1
    return horizon


# ----------------------------------------------------------------------------- networks

def temporal_unet(transition_dim: int, config: DiffuserConfig) -> UNet1DModel:
    """Janner's TemporalUnet in diffusers: x [B, transition_dim, H] -> x0 [B, transition_dim, H]."""
    channels = tuple(config.dim * m for m in config.dim_mults)
    return UNet1DModel(
        in_channels=transition_dim, out_channels=transition_dim, extra_in_channels=0,
        block_out_channels=channels,
        down_block_types=("DownResnetBlock1D",) * len(channels),
        up_block_types=("UpResnetBlock1D",) * (len(channels) - 1),
        mid_block_type="MidResTemporalBlock1D", out_block_type="OutConv1DBlock",
        layers_per_block=1, downsample_each_block=False, norm_num_groups=8, act_fn="mish",
        time_embedding_type="positional", flip_sin_to_cos=False, freq_shift=1, use_timestep_embedding=True,
    )


def value_network(transition_dim: int, config: DiffuserConfig) -> UNet1DModel:
    """Janner's ValueFunction in diffusers: x [B, transition_dim, H] -> value [B, 1]."""
    channels = tuple(config.dim * m for m in config.dim_mults)
    return UNet1DModel(
        in_channels=transition_dim, out_channels=transition_dim, extra_in_channels=0,
        block_out_channels=channels,
        down_block_types=("DownResnetBlock1D",) * len(channels), up_block_types=(),
        mid_block_type="ValueFunctionMidBlock1D", out_block_type="ValueFunction",
        layers_per_block=1, downsample_each_block=True, norm_num_groups=8, act_fn="mish",
        time_embedding_type="positional", flip_sin_to_cos=False, freq_shift=1, use_timestep_embedding=True,
    )


def ddpm_scheduler(config: DiffuserConfig) -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=config.n_diffusion_steps, beta_schedule="squaredcos_cap_v2",
        prediction_type="sample", clip_sample=config.clip_denoised, clip_sample_range=1.0,
        variance_type="fixed_small",
    )


# ----------------------------------------------------------------------------- data

class Normalizer:
    """Per-dimension affine map of the original's GaussianNormalizer / LimitsNormalizer."""

    def __init__(self, kind: str, x_ND: np.ndarray):
        if kind == "limits":   # [min, max] -> [-1, 1]
            low, high = x_ND.min(0), x_ND.max(0)
            self.shift, self.scale = (high + low) / 2, np.maximum((high - low) / 2, 1e-6)
        else:
            self.shift, self.scale = x_ND.mean(0), x_ND.std(0) + 1e-6   # not in paper: 1e-6 keeps constant dims finite
        self.shift, self.scale = self.shift.astype(np.float32), self.scale.astype(np.float32)

    def normalize(self, x):
        return (x - self.shift) / self.scale

    def unnormalize(self, x):
        return x * self.scale + self.shift

    def state(self) -> dict[str, np.ndarray]:
        return {"shift": self.shift, "scale": self.scale}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "Normalizer":
        normalizer = cls.__new__(cls)
        normalizer.shift, normalizer.scale = state["shift"], state["scale"]
        return normalizer


def window_starts(episode_starts: np.ndarray, horizon: int, use_padding: bool) -> np.ndarray:
    """[W, 2] int64 (window start row, its episode's end row) of every training window.

    Without padding a window lies inside its episode; with padding (the original's ``use_padding``)
    every step but the last starts one, and rows past the episode's end repeat its last row
    (not in paper: the original pads with zeros in raw space; repeating keeps padded states real).
    """
    rows = []
    for start, end in zip(episode_starts[:-1], episode_starts[1:]):
        last_start = end - 1 if use_padding else end - horizon + 1
        if last_start > start:
            first = np.arange(start, last_start, dtype=np.int64)
            rows.append(np.stack([first, np.full_like(first, end)], 1))
    if not rows:
        raise ValueError(f"Diffuser: no episode holds a window of horizon {horizon}; lower `horizon` or set use_padding: true")
    return np.concatenate(rows)


def value_targets(data, discount: float, termination_penalty: float) -> np.ndarray:
    """[N] float32 discounted return from each step to its episode's end (the original's ValueDataset)."""
    rewards = data.rewards.astype(np.float64) + termination_penalty * data.terminals
    values = np.zeros(len(rewards))
    for start, end in zip(data.episode_starts[:-1], data.episode_starts[1:]):
        running = 0.0
        for t in range(end - 1, start - 1, -1):
            running = rewards[t] + discount * running
            values[t] = running
    return values.astype(np.float32)


# ----------------------------------------------------------------------------- agent

class DiffuserAgent:
    CONFIG = DiffuserConfig
    PROFILES = {
        # not in paper: CI-sized (seconds on one core): tiny U-Net, short plans, few diffusion steps
        "smoke": {"steps": 200, "horizon": 16, "n_diffusion_steps": 10, "dim": 16, "dim_mults": [1, 2],
                  "batch_size": 16, "gradient_accumulate_every": 1, "plan_samples": 2, "replan_every": 4},
        # not in paper: minutes on a CPU; plans long enough to cross a small maze
        "quick": {"steps": 4000, "horizon": 64, "n_diffusion_steps": 20, "dim": 32, "dim_mults": [1, 2, 4],
                  "gradient_accumulate_every": 1, "step_start_ema": 500, "plan_samples": 8},
        # config/locomotion.py n_train_steps 1e6 (maze2d: 2e6, but 1e6 keeps every suite comparable)
        "paper": {"steps": 1_000_000},
    }

    @classmethod
    def suite_overrides(cls, suite: str, dataset: str | None = None) -> dict[str, Any]:
        """Per-suite (and, when ``dataset`` is given, per-dataset) values of baselines/configs/diffuser.yaml."""
        overrides = suite_overrides_from_yaml("diffuser", suite)
        if dataset is not None:
            overrides.update((yaml.safe_load(CONFIG_FILE.read_text())["datasets"].get(dataset)) or {})
            overrides.pop("source", None)
        return overrides

    def __init__(self, seed: int, device: str = "cpu"):
        self.seed, self.device = int(seed), torch.device(device)
        self.config = DiffuserConfig()
        self.step = 0
        self.unet = self.ema = self.value = self.value_ema = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.train_generator = torch.Generator().manual_seed(self.seed)
        self.plan_generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.obs_norm = self.act_norm = None
        self.obs_dim = self.act_dim = 0
        self.action_low = self.action_high = None
        self.reset(0)

    # ------------------------------------------------------------------ building
    @property
    def goal_conditioned(self) -> bool:
        return self.config.goal_xy is not None or self.config.goal_obs_slice is not None

    @property
    def value_guided(self) -> bool:
        return not self.goal_conditioned and self.config.n_guide_steps > 0

    def _build(self, obs_dim: int, act_dim: int) -> None:
        torch.manual_seed(self.seed)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        transition_dim = obs_dim + act_dim
        self.scheduler = ddpm_scheduler(self.config)
        self.unet = temporal_unet(transition_dim, self.config).to(self.device)
        self.ema = copy.deepcopy(self.unet).requires_grad_(False)
        parameters = list(self.unet.parameters())
        if self.value_guided:
            self.value = value_network(transition_dim, self.config).to(self.device)
            self.value_ema = copy.deepcopy(self.value).requires_grad_(False)
            parameters += list(self.value.parameters())
        # not in paper: one Adam over both networks, trained side by side (the original trains them in two runs)
        self.optimizer = torch.optim.Adam(parameters, lr=self.config.learning_rate)
        discounts = self.config.loss_discount ** torch.arange(self.config.horizon, dtype=torch.float32)
        weights_HT = (discounts / discounts.mean())[:, None].repeat(1, transition_dim)
        weights_HT[0, :act_dim] = self.config.action_weight
        self.loss_weights_HT = weights_HT.to(self.device)

    def _prepare_data(self, data) -> None:
        """Normalised transitions [N, act_dim + obs_dim] and the window index, on the device."""
        config = self.config
        self.windows_W2 = torch.as_tensor(window_starts(data.episode_starts, config.horizon, config.use_padding))
        transitions = np.concatenate([self.act_norm.normalize(data.actions), self.obs_norm.normalize(data.observations)], 1)
        self.transitions_NT = torch.as_tensor(transitions, dtype=torch.float32, device=self.device)
        if self.value_guided:
            targets = value_targets(data, config.value_discount, config.termination_penalty)
            self.value_targets_N = torch.as_tensor(targets, device=self.device)

    # ------------------------------------------------------------------ training
    def fit(self, data, config: dict[str, Any], steps: int, on_step: Callable[[int, dict[str, float]], None] | None = None) -> None:
        resolved = _validated_config(config)
        if self.unet is None:
            self.config = resolved
            self.obs_norm = Normalizer(resolved.normalizer, data.observations)
            self.act_norm = Normalizer(resolved.normalizer, data.actions)
            self.action_low = np.asarray(data.action_low, np.float32)
            self.action_high = np.asarray(data.action_high, np.float32)
            self._build(data.obs_dim, data.act_dim)
        self._prepare_data(data)
        self.unet.train()
        while self.step < steps:
            self.optimizer.zero_grad()
            metrics = {"loss": 0.0}
            for _ in range(self.config.gradient_accumulate_every):
                losses = self._losses()
                for name, value in check_finite(self.step + 1, **losses).items():
                    metrics[name] = metrics.get(name, 0.0) + value / self.config.gradient_accumulate_every
                (sum(losses.values()) / self.config.gradient_accumulate_every).backward()
            self.optimizer.step()
            self.step += 1
            metrics["loss"] = metrics["loss/diffusion"] + metrics.get("loss/value", 0.0)
            self._update_ema()
            if on_step is not None:
                on_step(self.step, metrics)

    def _sample_windows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of windows: trajectories [B, H, T] (normalised [a, s]) and their start rows [B]."""
        picks = torch.randint(len(self.windows_W2), (self.config.batch_size,), generator=self.train_generator)
        start_B, end_B = self.windows_W2[picks, 0], self.windows_W2[picks, 1]
        rows_BH = torch.minimum(start_B[:, None] + torch.arange(self.config.horizon), end_B[:, None] - 1)
        return self.transitions_NT[rows_BH.to(self.device)], start_B.to(self.device)

    def _losses(self) -> dict[str, torch.Tensor]:
        """Diffusion loss (weighted L2 on x0) and, when value-guided, the value loss (L2 on returns)."""
        x0_BHT, start_B = self._sample_windows()
        conditions = self._training_conditions(x0_BHT)
        t_B = torch.randint(self.config.n_diffusion_steps, (len(x0_BHT),), generator=self.train_generator).to(self.device)
        noise_BHT = torch.randn(x0_BHT.shape, generator=self.train_generator).to(self.device)
        noisy_BHT = self._inpaint(self.scheduler.add_noise(x0_BHT, noise_BHT, t_B), conditions)
        recon_BHT = self._inpaint(self._denoise(self.unet, noisy_BHT, t_B), conditions)
        losses = {"loss/diffusion": (((recon_BHT - x0_BHT) ** 2) * self.loss_weights_HT).mean()}
        if self.value_guided:
            value_B = self.value(noisy_BHT.transpose(1, 2), t_B).sample[:, 0]
            losses["loss/value"] = ((value_B - self.value_targets_N[start_B]) ** 2).mean()
        return losses

    def _training_conditions(self, x0_BHT: torch.Tensor) -> dict[int, torch.Tensor]:
        """The original's GoalDataset (first and last state) or SequenceDataset (first state)."""
        states_BHS = x0_BHT[:, :, self.act_dim:]
        if self.goal_conditioned:
            return {0: states_BHS[:, 0], self.config.horizon - 1: states_BHS[:, -1]}
        return {0: states_BHS[:, 0]}

    def _inpaint(self, x_BHT: torch.Tensor, conditions: dict[int, torch.Tensor]) -> torch.Tensor:
        """The original's apply_conditioning: overwrite the conditioned states (not actions)."""
        x_BHT = x_BHT.clone()
        for t, state_BS in conditions.items():
            x_BHT[:, t, self.act_dim:] = state_BS
        return x_BHT

    @staticmethod
    def _denoise(network: UNet1DModel, x_BHT: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
        return network(x_BHT.transpose(1, 2), t_B).sample.transpose(1, 2)

    @torch.no_grad()
    def _update_ema(self) -> None:
        """The original Trainer: copy before step_start_ema, then EMA every update_ema_every steps."""
        if self.step % self.config.update_ema_every:
            return
        pairs = [(self.ema, self.unet)] + ([(self.value_ema, self.value)] if self.value_guided else [])
        for ema, model in pairs:
            if self.step < self.config.step_start_ema:
                ema.load_state_dict(model.state_dict())
            else:
                for ema_p, p in zip(ema.parameters(), model.parameters()):
                    ema_p.lerp_(p, 1.0 - self.config.ema_decay)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample_plans(self, conditions: dict[int, torch.Tensor], guide: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reverse diffusion with the EMA network: plans [B, H, T] (normalised [a, s]) and values [B].

        ``conditions`` maps plan steps to normalised states [B, obs_dim]; ``guide`` (default: when
        value-guided) takes the original's n_step_guided_p_sample gradient steps on the value.
        Values are the value network's estimate at the last step (zeros without guidance).
        """
        guide = self.value_guided if guide is None else guide
        batch = next(iter(conditions.values())).shape[0]
        shape = (batch, self.config.horizon, self.obs_dim + self.act_dim)
        x_BHT = self._inpaint(torch.randn(shape, generator=self.plan_generator, device=self.device), conditions)
        values_B = torch.zeros(batch, device=self.device)
        for t in self.scheduler.timesteps:
            t_B = torch.full((batch,), int(t), dtype=torch.long, device=self.device)
            if guide:
                for _ in range(self.config.n_guide_steps):
                    values_B, grad_BHT = self._value_gradient(x_BHT, t_B)
                    if self.config.scale_grad_by_std:
                        grad_BHT = self._posterior_variance(int(t)) * grad_BHT
                    if int(t) < self.config.t_stopgrad:
                        grad_BHT = torch.zeros_like(grad_BHT)
                    x_BHT = self._inpaint(x_BHT + self.config.scale * grad_BHT, conditions)
            x0_BHT = self._denoise(self.ema, x_BHT, t_B)
            x_BHT = self.scheduler.step(x0_BHT, t, x_BHT, generator=self.plan_generator).prev_sample
            x_BHT = self._inpaint(x_BHT, conditions)
        return x_BHT, values_B

    def predicted_value(self, plans_BHT: torch.Tensor, t: int = 0) -> torch.Tensor:
        """[B] the value network's estimate of (normalised) plans at diffusion step ``t``."""
        with torch.no_grad():
            t_B = torch.full((plans_BHT.shape[0],), t, dtype=torch.long, device=self.device)
            return self.value_ema(plans_BHT.transpose(1, 2), t_B).sample[:, 0]

    def _value_gradient(self, x_BHT: torch.Tensor, t_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            x_BHT = x_BHT.detach().requires_grad_(True)
            values_B = self.value_ema(x_BHT.transpose(1, 2), t_B).sample[:, 0]
            (grad_BHT,) = torch.autograd.grad(values_B.sum(), x_BHT)
        return values_B.detach(), grad_BHT

    def _posterior_variance(self, t: int) -> float:
        alphas_cumprod = self.scheduler.alphas_cumprod
        previous = alphas_cumprod[t - 1] if t > 0 else torch.tensor(1.0)
        return float(self.scheduler.betas[t] * (1 - previous) / (1 - alphas_cumprod[t]))

    # ------------------------------------------------------------------ acting
    def reset(self, num_envs: int) -> None:
        """New episodes: no plans yet; the planning noise restarts from the seed (same seed, same actions)."""
        self.num_envs = num_envs
        self.plan_generator.manual_seed(self.seed)
        self.plans: list[np.ndarray | None] = [None] * num_envs   # per episode: [H, T] raw plan
        self.plan_age = np.zeros(num_envs, np.int64)              # env steps since the plan was made

    def goal_state(self, obs_BS: np.ndarray) -> np.ndarray:
        """[B, obs_dim] the plan's last state: at the goal and at rest (the original's [*target, 0, 0])."""
        config = self.config
        goal_B2 = (np.broadcast_to(np.asarray(config.goal_xy, np.float32), (len(obs_BS), 2)) if config.goal_xy is not None
                   else obs_BS[:, config.goal_obs_slice[0]:config.goal_obs_slice[1]])
        state_BS = np.zeros_like(obs_BS)
        state_BS[:, config.position_slice[0]:config.position_slice[1]] = goal_B2
        if config.goal_obs_slice is not None:
            state_BS[:, config.goal_obs_slice[0]:config.goal_obs_slice[1]] = goal_B2
        return state_BS

    def act(self, obs: np.ndarray) -> np.ndarray:
        """obs [B, obs_dim] -> actions [B, act_dim] float32 within the action bounds."""
        obs_BS = np.asarray(obs, np.float32)
        if len(obs_BS) != self.num_envs:
            self.reset(len(obs_BS))
        stale = [i for i, plan in enumerate(self.plans) if plan is None or self._plan_expired(i)]
        if stale:
            self._plan(obs_BS, np.asarray(stale))
        actions = np.stack([self._action_from_plan(i, obs_BS[i]) for i in range(len(obs_BS))])
        self.plan_age += 1
        return np.clip(actions, self.action_low, self.action_high).astype(np.float32)

    def _plan_expired(self, i: int) -> bool:
        """Goal inpainting: one plan per episode (scripts/plan_maze2d.py); value guidance: every replan_every steps."""
        age = self.plan_age[i]
        return not self.goal_conditioned and (age >= self.config.replan_every or age >= self.config.horizon)

    def _plan(self, obs_BS: np.ndarray, episodes: np.ndarray) -> None:
        """One denoising pass for the given episodes, ``plan_samples`` plans each; keeps the best by value."""
        samples = self.config.plan_samples if self.value_guided else 1   # without a value there is no best
        first_BS = np.repeat(obs_BS[episodes], samples, 0)
        conditions = {0: self._to_tensor(self.obs_norm.normalize(first_BS))}
        if self.goal_conditioned:
            conditions[self.config.horizon - 1] = self._to_tensor(self.obs_norm.normalize(self.goal_state(first_BS)))
        plans_BHT, values_B = self.sample_plans(conditions)
        plans = plans_BHT.reshape(len(episodes), samples, *plans_BHT.shape[1:]).cpu().numpy()
        best = values_B.reshape(len(episodes), samples).argmax(1).cpu().numpy()
        for row, episode in enumerate(episodes):
            plan_HT = plans[row, best[row]]
            self.plans[episode] = np.concatenate([self.act_norm.unnormalize(plan_HT[:, :self.act_dim]),
                                                  self.obs_norm.unnormalize(plan_HT[:, self.act_dim:])], 1)
            self.plan_age[episode] = 0

    def _action_from_plan(self, i: int, obs_S: np.ndarray) -> np.ndarray:
        plan_HT, age = self.plans[i], int(self.plan_age[i])
        if not self.goal_conditioned:
            return plan_HT[age, :self.act_dim]
        # scripts/plan_maze2d.py: steer toward the next planned state; past the plan, the goal at rest
        states_HS = plan_HT[:, self.act_dim:]
        waypoint_S = states_HS[age + 1] if age + 1 < len(states_HS) else self.goal_state(states_HS[-1:])[0]
        position, velocity = self._position_and_velocity_dims()
        return (waypoint_S[position] - obs_S[position]) + (waypoint_S[velocity] - obs_S[velocity])

    def _position_and_velocity_dims(self) -> tuple[slice, list[int]]:
        """Maze observations: (x, y) at position_slice; every dim outside it and the goal is a velocity."""
        position = slice(*self.config.position_slice)
        others = set(range(*self.config.position_slice))
        if self.config.goal_obs_slice is not None:
            others |= set(range(*self.config.goal_obs_slice))
        return position, [d for d in range(self.obs_dim) if d not in others]

    def _to_tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, np.float32), device=self.device)

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """A finished episode's next observation starts a new one: plan afresh."""
        for i in np.flatnonzero(np.asarray(dones)):
            if i < len(self.plans):
                self.plans[i] = None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        config = dataclasses.asdict(self.config)
        config["dim_mults"] = list(config["dim_mults"])
        return {
            "step": self.step, "seed": self.seed, "config": config, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
            "unet": self.unet.state_dict(), "ema": self.ema.state_dict(),
            "value": self.value.state_dict() if self.value is not None else None,
            "value_ema": self.value_ema.state_dict() if self.value_ema is not None else None,
            "optimizer": self.optimizer.state_dict(), "train_generator": self.train_generator.get_state(),
            "obs_norm": self.obs_norm.state(), "act_norm": self.act_norm.state(),
            "action_low": self.action_low, "action_high": self.action_high,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = state["seed"]   # the planning noise follows the trained agent's seed, not the new object's
        self.config = _validated_config(state["config"])
        self.obs_norm, self.act_norm = Normalizer.from_state(state["obs_norm"]), Normalizer.from_state(state["act_norm"])
        self.action_low, self.action_high = state["action_low"], state["action_high"]
        self._build(state["obs_dim"], state["act_dim"])
        self.unet.load_state_dict(state["unet"])
        self.ema.load_state_dict(state["ema"])
        if self.value is not None:
            self.value.load_state_dict(state["value"])
            self.value_ema.load_state_dict(state["value_ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.train_generator.set_state(state["train_generator"])
        self.step = state["step"]
        self.reset(self.num_envs)
