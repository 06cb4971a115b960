"""MAGE's one config dataclass: the paper's values as defaults, every other value marked.

Paper defaults: Table 25's fixed configuration (K = 8 scales, codebook 512, 8 transformer blocks)
and Table 10 (Adroit: lr 2e-4, horizon 24, dropout 0.1, discount 0.99, 4 heads, embed 512,
batch 512, Adam). Per-suite values (Tables 11-14) live in the suite YAMLs and arrive as overrides.
Every ablation of the paper is one field here (docs/interfaces.md, "MAGE config fields").
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

SCHEMES = ("rs", "s", "a", "a+cql", "rsa")
INVERSE_DYNAMICS = ("latent", "explicit")
DECODER_REFINEMENTS = ("adapter", "direct", "none")
RTG_MODES = ("condition", "reweight", "none")
ACT_BACKENDS = ("fast", "eager")
TARGET_RULES = ("rolled", "clamped", "fixed", "value", "td")
GENERATOR_INPUTS = ("teacher", "sampled")
INVERSE_INPUTS = ("true", "generated")
EXPLICIT_FROM = ("plan", "observed")
TD_ACTIVATIONS = ("gelu", "relu")
RTG_ESTIMATORS = ("monte_carlo", "n_step")
PLAN_DECODERS = ("adapted", "base", "anchored", "switched")
PLAN_RANKS = ("value", "mean_value", "q", "q_mean", "return")
COND_SPANS = ("first", "window")
CE_WEIGHTINGS = ("position", "scale")
MAX_SCALES = 10


@dataclass
class MageConfig:
    # --- the paper (Table 10 / Table 25) ---
    num_scales: int = 8                 # K (Table 25 fixed config)
    codebook_size: int = 512            # V (Table 10 / 25)
    num_blocks: int = 8                 # transformer depth (Table 10 / 25)
    num_heads: int = 4                  # Table 10
    embed_dim: int = 512                # Table 10
    horizon: int = 24                   # H (Table 10)
    dropout: float = 0.1                # Table 10
    lr: float = 2e-4                    # Table 10, Adam for both stages
    batch_size: int = 512               # Table 10
    scheme: str = "rs"                  # what a token window holds: (R, s) is the paper's choice (Table 6)
    inverse_dynamics: str = "explicit"  # "latent": a_0 = I(sum_k z_k), the paper's eq. 6; "explicit": I(s_0_hat, s_1_hat) of
                                        # the plan (Table 19). Default not the paper's: measured on maze2d-umaze at the cpu profile
                                        # (bench/README.md "MAGE diagnostics"): I(Z) on generated Z reaches the goal from 2/3 of
                                        # the starts, the anchored plan's (s_0_hat, s_1_hat) from all
    decoder_refinement: str = "adapter"  # D' = frozen D + Houlsby adapters (App. A.4.1); Tables 22 / 26
    rtg_mode: str = "condition"         # Table 23: "reweight" = normalised-RTG sample weights, "none" = no RTG
    rtg_in_decoder: bool = True         # Table 7: R_0 given to D(Z, R_0)
    rtg_in_fine_scales: bool = True     # Table 7: R_0 in the conditioning of m_{k>1}
    rtg_in_cond_loss: bool = True       # Table 7: R_0 part of L_cond

    # --- not in the paper ---
    scale_schedule: tuple[int, ...] | None = None  # not in paper: None = geometric rule of scale_lengths(K, H) (1 ... H)
    codebook_dim: int = 32              # not in paper: small code vectors keep nearest-neighbour search well-conditioned (VAR uses 32)
    tokenizer_width: int = 256          # not in paper: channels of the 1-D conv encoder/decoder over the H window
    tokenizer_depth: int = 2            # not in paper: residual conv blocks in encoder and decoder each
    adapter_condition: bool = True      # not in paper as such (our reading of App. A.4.1: the adapters "modulate internal
                                        # representations according to the conditional signals"): the adapters of D' are
                                        # given (s_0, R_0), so the plan starts at s_0 whatever the tokens' start error (only
                                        # with decoder_refinement "adapter"). Measured: plan start error 0.48 -> 0.03 while
                                        # acting (bench/README.md "MAGE diagnostics")
    plan_decoder: str = "adapted"       # not in paper: which decoder turns generated tokens into the plan that acts.
                                        # adapted = D' (D + adapters, App. A.4.1); base = the tokenizer's D; anchored = D
                                        # with the plan's states moved by s_0 - s_0_hat, so it starts at s_0. D' is trained
                                        # by L_cond on step 0 only, and nothing holds its later steps to the data. Measured
                                        # (bench/README.md "Issue 15" D, E): through D' the plan's displacement correlates
                                        # -0.2 with the data's, through D +0.7; D reaches the goal more often, D' stays
                                        # longer; neither wins over seeds, so the paper's D' stays the default.
                                        # switched = D where the return head's V(s_0) < switch_value, D' where it is
                                        # above (near the goal). Measured (bench/README.md "Issue 15" M), the defaults'
                                        # models at 0.5: umaze 39.6 +- 16.7 (5 seeds; as trained 25.9 +- 18.1, IQL 67.1),
                                        # medium -7.7 +- 0.1 (D alone -4.8 +- 1.3): off
    switch_value: float = 0.5           # not in paper: V(s_0) (normalised RTG) from which plan_decoder "switched" decodes by D'
    adapter_dim: int = 32               # not in paper: Houlsby bottleneck width (their typical 16-64)
    phi_ratio: float = 0.5              # not in paper: VAR's Phi residual mix (quant_resi = 0.5)
    vq_beta: float = 0.25               # not in paper: commitment weight of VQ-VAE (van den Oord et al.) / VAR
    dead_code_restart_every: int = 200  # not in paper: tokenizer steps between restarts of unused codes
    dead_code_threshold: float = 1e-3   # not in paper: EMA usage share below which a code counts as dead
    lambda_cond: float = 1.0            # not in paper: L_cond weight; 1 puts it on the scale of L_CE at init
    lambda_inv: float = 1.0             # not in paper: weight of L_inv (stage 1 and stage 2)
    inverse_in_tokenizer: bool = True   # not in paper (our reading of §3.3, where L_inv "encourages the latent Z to preserve
                                        # dynamics-consistent information"): L_inv also trains I and, through the
                                        # straight-through f_hat, the encoder E in stage 1, so that Z keeps a_0
    cond_relabel: bool = False          # not in paper: L_cond also on a second pass whose R_0 is drawn uniformly from the
                                        # data's range, so the plan starts at s_0 under any target (bench/README.md,
                                        # "MAGE diagnostics": high targets move the plan's start toward the goal;
                                        # measured: it removes that, but did not raise the quick-profile score)
    cond_span: str = "first"            # not in paper as such: which plan steps L_cond holds to the data window. first =
                                        # step 0 (eq. 7: x_hat_0 against (s_0, R_0)); window = every step of the conditioned
                                        # columns, so D' keeps the data's plan shape. Measured (bench/README.md "Issue 15" F,
                                        # maze2d-umaze, cpu profile, 3 seeds): D' then follows the data (displacement corr
                                        # 0.81, against -0.2) and the agent passes through the goal as the data do: -2.5 +-
                                        # 14.4 against first's 41.8 +- 26.0, so the paper's step 0 stays the default
    ce_weighting: str = "position"      # not in paper as such: how L_CE averages its token positions. position = every
                                        # token alike (VAR's), so scale 1's one token is 1/L of the loss; scale = each
                                        # scale's mean CE alike, so the coarse tokens that choose the route weigh as much as
                                        # the finest scale's. Measured (bench/README.md "Issue 15" H): scale 1 reads 3-6 x
                                        # more from R_0 (0.01-0.10 -> 0.05-0.32 nats), but maze2d scores do not move (umaze
                                        # 43.0 +- 21.9 against 41.8 +- 26.0, medium -7.8 both, 3 seeds), so VAR's stays
    rtg_dropout: float = 0.0            # not in paper: share of stage-2 windows whose R_0 the generator does not see (a
                                        # learnt null embedding instead), so it also learns p(m | s_0) for guidance
                                        # (VAR's class dropout 0.1; Decision Diffuser drops its return condition 0.25)
    guidance: float = 1.0               # not in paper: classifier-free guidance while acting, per scale logits
                                        # l = l(s_0) + w (l(s_0, R_0) - l(s_0)) (VAR, Decision Diffuser); 1 = none
    gumbel_tau: float = 1.0             # not in paper: standard Gumbel-softmax temperature (Jang et al.)
    cql_alpha: float = 1.0              # not in paper: CQL(H) penalty weight of the a+cql critic (Kumar et al. default scale)
    cql_actor_weight: float = 1.0       # not in paper: weight of -Q(s_0, a_0_hat)/|Q| in a+cql's generator loss (TD3+BC style)
    discount: float = 0.99              # Table 10 (used by the a+cql critic and observe(); data RTG uses the suite gamma)
    weight_decay: float = 0.0           # not in paper: plain Adam as stated
    grad_clip: float = 1.0              # not in paper: stabilises transformer training (VAR clips at 2)
    ema_decay: float = 0.999            # not in paper: > 0 = the agent acts on an exponential average of the stage-2 weights
                                        # (as Diffuser and image generators do; training itself is unchanged); 0 = the last
                                        # weights. measured on maze2d-umaze at the cpu profile, 4 seeds, each trained once and
                                        # acted both ways: +11.2 +/- 9.6 (no seed worse; bench/README.md "Issue 15" P); on
                                        # medium and large the same as the old defaults' last weights, at random (Q)
    tokenizer_fraction: float = 1 / 3   # not in paper: share of `steps` given to stage 1 (tokenizer). Measured on maze2d-umaze
                                        # at the cpu profile (bench/README.md "Issue 15" I): 18k steps with the tokenizer at 6k
                                        # scored 8.9 / -14.2 (seeds 0, 1), with it kept at 2k (generator 16k) 68.2 / 52.3: a
                                        # longer-trained tokenizer fits better and the plan's first action loses its lean to the goal
    target_return_quantile: float = 1.0  # not in paper: target R_0 = scale * quantile(q) of the dataset's episode returns-to-go
    target_return_scale: float = 2.5    # not in paper: multiplier on the target (on the quantile above, or on V(s) under
                                        # target_rule value / td). 2.5 x V: measured on maze2d-umaze (bench/README.md "Issue
                                        # 15", tables B, C): 41.8 +- 26.0 over 3 seeds, level with a fixed 1.5 x top RTG
                                        # (41.4), far above clamped (13.2); the data leave the goal after ~60 steps, and a
                                        # target above any the data reached there asks for staying longer
    target_rule: str = "value"          # not in paper (a reviewer asked for the targets): R_t while acting. rolled = R_0 = the
                                        # target above, then R <- (R - r) / gamma (DT's bookkeeping; the rule before);
                                        # clamped = rolled, kept in the data's RTG range; fixed = R_0 every step; value =
                                        # target_return_scale x V(s_t), the value_expectile-expectile of the data's RTG at s_t
                                        # (mage/value.py), every step; td = the same with IQL's V(s_t), learnt by TD over the
                                        # data's transitions in stage 0 (td_expectile, value_steps). value: measured with the anchored plans (bench/README.md
                                        # "Issue 15"); on the old unanchored plans rolled was level with it (seeds 0/1: 29.3
                                        # against 27.0) while driving R to 12 x the data's range
    value_expectile: float = 0.99       # not in paper: tau of V(s) under target_rule "value" (IQL's expectile loss);
                                        # 0.99 ~ the best return the data reached from states like s
    value_batch_size: int = 256         # not in paper: V(s) (either kind) draws its own batch every training step
                                        # (IQL's 256), since a small MLP needs more samples than the generator's batch
    value_updates: int = 1              # not in paper: ReturnHead V(s) updates per training step (target_rule "value")
    rtg_estimator: str = "monte_carlo"  # not in paper: what R_t in the windows, R_0 and the targets are. monte_carlo = the
                                        # data's discounted return-to-go (the paper's "cumulative future reward", l.90);
                                        # n_step = sum_{i<n} gamma^i r_{t+i} + gamma^n V(s_{t+n}), n = bootstrap_steps,
                                        # V = IQL's expectile value learnt by TD in stage 0 (value_steps): the same
                                        # quantity estimated with bootstrapping, so that a window's R says how good the
                                        # state it leads to is, also where no reward follows within the data's segment.
                                        # Measured (bench/README.md "Issue 15" E, with td x3 and base D): maze2d-medium
                                        # 18.3 +- 22.3 (62.8 / -1.2 / -6.8), umaze -7.4 +- 1.0: not the default
    rtg_relative: bool = False          # not in paper: R_t - V(s_t) (stage-0 value) in place of R_t everywhere R is
                                        # modelled: the same condition, since V(s_0) is a function of s_0, but "how much
                                        # better than usual from here" reads alike in every state, as in Advantage-
                                        # Conditioned Transformers (Gao et al., 2023); targets then need no V(s)
    bootstrap_steps: int | None = None  # not in paper: n of the n_step estimator; None = horizon (a window's own length)
    value_steps: int = 0                # not in paper: stage 0, TD steps of IQL's V and twin Q before stage 1 (needed by
                                        # rtg_estimator n_step and target_rule td; counted in fit's steps)
    td_expectile: float = 0.9           # not in paper: IQL's expectile tau of the stage-0 value (IQL uses 0.7-0.9).
                                        # Measured (bench/README.md "Issue 15" X, medium seeds 0-1, td::1 + q_mean):
                                        # 0.7 scores as 0.9 (-7.1 / -6.5); IQL's own trained Q there 59.2 / 55.5
    td_activation: str = "gelu"         # not in paper: the activation of the stage-0 V and twin Q (IQL's MLPs: relu; every
                                        # other MLP of MAGE: gelu). Measured (bench/README.md "Issue 15" Y, medium, 4 seeds,
                                        # td::1 + q_mean over 16): relu 5.6 +- 6.6, gelu -6.9 +- 0.1, every seed up (IQL 25.1);
                                        # but umaze the other way (Z, 4 new trainings): relu in the run -14.8 +- 1.4, relu
                                        # fitted afterwards 37.8 / 30.8, gelu fitted afterwards 45.2 +- 29.1 (IQL 67.1): gelu
    advantage_beta: float = 0.0         # not in paper: > 0 = stage 2 weighs each window's L_CE and L_cond by
                                        # min(exp(beta A), 100), A = Q(s_0, a_0) - V(s_0) of the stage-0 value in reward
                                        # units (IQL's advantage-weighted regression, its beta 3 and clip 100), so the
                                        # generator models the data's windows in proportion to how much better than usual
                                        # their first step is; L_inv (a model of the dynamics) stays unweighted; the
                                        # weighted means divide by the batch's sum of weights. 0 = off. Measured
                                        # (bench/README.md "Issue 15" J, beta 3, 3 seeds): umaze -17.4 +- 1.8 acting
                                        # through D', 19.8 +- 19.8 through D; medium -7.8 / -5.3; beta 1 (2 seeds)
                                        # alike; IQL 62.6 / 21.0: off
    value_lr: float = 3e-4              # not in paper: Adam lr of the stage-0 value (IQL's)
    rtg_discount: float | None = None   # not in paper: gamma of the RTG that MAGE models; None = the suite's gamma
                                        # (1.0 = the plain "cumulative future reward" of the paper's text, l.90).
                                        # Measured (bench/README.md "Issue 15" K, umaze, 4 seeds): 1.0 scores
                                        # 3.0 +- 17.6 against the defaults' 25.9 +- 18.1 (5 seeds): the suite's gamma stays
    rtg_across_cuts: bool = False       # not in paper: for data cut from one continuing stream (OfflineDataset.continuing),
                                        # RTG runs on past the cuts and windows span them, as the stream does
                                        # Measured (bench/README.md "Issue 15" L, umaze, 4 seeds): -9.5 +- 10.0 against
                                        # the defaults' 36.2 +- 19.2 on the same seeds (reaches the goal, then leaves): off
    generator_inputs: str = "teacher"   # not in paper as such: "teacher" = one teacher-forced pass from the true tokens
                                        # (VAR's training); "sampled" = Alg. 5's loop, scale by scale on its own Gumbel samples.
                                        # Measured (bench/README.md "Issue 15" K, umaze, 4 seeds): sampled 10.6 +- 18.0
                                        # against the defaults' 25.9 +- 18.1 (5 seeds) at ~1.5 x the training time: teacher stays
    explicit_from: str = "plan"         # not in paper: the explicit head's first state: the plan's s_0_hat (Table 19's
                                        # reading) or the observed s_0, so the action heads for the plan's s_1_hat from
                                        # where the agent is, whatever the plan's start error
    inverse_input: str = "true"         # not in paper: stage 2 trains I on the true Z (eq. 6) or on the Z of the
                                        # generator's greedy tokens, which is what I reads while acting
                                        # Measured (bench/README.md "Issue 15" L, umaze, 4 seeds, acting through I(Z)):
                                        # generated -7.2 +- 3.3, true -9.3 +- 0.4; under the explicit head it does not act: true
    plan_samples: int = 1               # not in paper (which acts on the greedy plan, l.472): > 1 = the greedy plan and
                                        # plan_samples - 1 sampled ones, the best by plan_rank acts (TAP's value-ranked
                                        # sampling); needs a stage-0 value, the explicit head and a state scheme; acts on
                                        # the eager path
    plan_rank: str = "value"            # not in paper: how plan_samples ranks its plans: value = the stage-0 V of the
                                        # plan's last state; mean_value = its mean over the plan's states (a plan that
                                        # stays where V is high beats one passing through); q = the stage-0 twin Q of
                                        # (s_0, the plan's first action), as IDQL picks among behaviour samples (measured,
                                        # bench/README.md "Issue 15" E: umaze -7.4 -> 21.3, medium 62.8 -> -7.0, as Q
                                        # overrates out-of-data actions at the medium goal); return = the plan's own
                                        # decoded R at step 0 (scheme rs: the return the tokenizer reads off the window);
                                        # q_mean = no pick: the candidates' first actions averaged with IQL's weights
                                        # exp(plan_beta A), A = Q(s_0, a_0^i) - V(s_0) in reward units, so the action is
                                        # IQL's policy target with the generator's samples in place of the data's actions.
                                        # Measured (bench/README.md "Issue 15" N, defaults' models, 16 plans, base D):
                                        # umaze 30.2 +- 16.6 (5 seeds; reaches the goal from 81-100% of the starts in
                                        # every seed, stays in some), medium 2.7 +- 9.7 (3); IQL 67.1 / 21.0: off
    plan_beta: float = 3.0              # not in paper: inverse temperature of plan_rank q_mean (IQL's beta on maze2d)
    plan_temperature: float = 1.0       # not in paper: the plan_samples - 1 drawn plans draw each token from
                                        # softmax(logits / T); T > 1 widens what the generator offers q_mean at a state
                                        # (bench/README.md "Issue 15" O: the share of stay-like candidates at the goal
                                        # orders the seeds' stays). Measured (bench/README.md "Issue 15" V, umaze, 4 seeds,
                                        # D + q_mean over 16): T = 2 16.0 +- 10.9 against T = 1 -4.7 +- 10.0, the stay-like
                                        # share up in every seed; the greedy defaults 25.4 +- 23.1; with the candidates at
                                        # 1 x the critic's V ("Issue 15" W, 4 other trainings) T = 2 10.8 +- 12.7 against
                                        # T = 1 29.3 +- 16.2, lower in 3 seeds of 4: 1
    replan_every: int = 1               # not in paper: the action is a_0, so replanning every step is the natural reading;
                                        # > 1 plays a_1.. of the decoded window (explicit I(s_t, s_t+1) when it holds no actions)
    stall_steps: int = 0                # not in paper: > 0 = once the observation has stayed within stall_radius of where
                                        # it was (z-scored units) for stall_steps steps without reward, the plan is drawn token
                                        # by token (Gumbel) instead of greedily until the agent moves: a greedy plan from a state
                                        # that no longer changes is the same plan, and the data never stand still
                                        # (bench/README.md "Issue 15" G: failed episodes end against a wall)
    stall_radius: float = 0.05          # not in paper: see stall_steps
    mixed_precision: bool = True        # not in paper: bf16 autocast on CUDA (ignored on CPU)
    act_backend: str = "fast"           # not in paper: "fast" = mage.fast_act.FastActor (a_0 as plan_actions gives it; CUDA graph on GPU), "eager" = plan_actions

    def __post_init__(self) -> None:
        _check_choice("scheme", self.scheme, SCHEMES)
        _check_choice("inverse_dynamics", self.inverse_dynamics, INVERSE_DYNAMICS)
        _check_choice("decoder_refinement", self.decoder_refinement, DECODER_REFINEMENTS)
        _check_choice("rtg_mode", self.rtg_mode, RTG_MODES)
        _check_choice("act_backend", self.act_backend, ACT_BACKENDS)
        _check_choice("target_rule", self.target_rule, TARGET_RULES)
        _check_choice("generator_inputs", self.generator_inputs, GENERATOR_INPUTS)
        _check_choice("inverse_input", self.inverse_input, INVERSE_INPUTS)
        _check_choice("explicit_from", self.explicit_from, EXPLICIT_FROM)
        _check_choice("td_activation", self.td_activation, TD_ACTIVATIONS)
        _check_choice("rtg_estimator", self.rtg_estimator, RTG_ESTIMATORS)
        _check_choice("plan_decoder", self.plan_decoder, PLAN_DECODERS)
        _check_choice("plan_rank", self.plan_rank, PLAN_RANKS)
        _check_choice("cond_span", self.cond_span, COND_SPANS)
        _check_choice("ce_weighting", self.ce_weighting, CE_WEIGHTINGS)
        if self.plan_decoder == "switched" and self.target_rule != "value":
            raise ValueError(f"plan_decoder switched reads the return head V(s_0): it needs target_rule value, "
                             f"got {self.target_rule!r}")
        if self.plan_rank == "return" and self.scheme != "rs":
            raise ValueError(f"plan_rank return reads the plan's R channel: it needs scheme rs, got {self.scheme!r}")
        for name in ("num_blocks", "num_heads", "embed_dim", "horizon", "codebook_size", "codebook_dim", "lr",
                     "batch_size", "gumbel_tau", "value_batch_size", "value_updates", "value_lr", "plan_beta",
                     "plan_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        for name in ("tokenizer_fraction", "target_return_quantile", "discount", "phi_ratio", "rtg_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("value_expectile", "td_expectile"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if self.guidance != 1.0 and not (self.rtg_dropout > 0 and self.rtg_conditioned):
            raise ValueError(f"guidance {self.guidance} needs a generator that also learnt without R_0: "
                             f"set rtg_dropout > 0 (with rtg_mode condition)")
        if self.advantage_beta < 0:
            raise ValueError(f"advantage_beta must be >= 0, got {self.advantage_beta}")
        if self.value_steps < 0:
            raise ValueError(f"value_steps must be >= 0, got {self.value_steps}")
        if self.needs_td_value and self.value_steps == 0:
            raise ValueError("rtg_estimator n_step, rtg_relative, target_rule td and advantage_beta learn V by TD in stage 0: "
                             "set value_steps > 0")
        if self.stall_steps < 0 or not self.stall_radius > 0:
            raise ValueError(f"stall_steps must be >= 0 and stall_radius > 0, got {self.stall_steps} and {self.stall_radius}")
        if self.plan_samples < 1:
            raise ValueError(f"plan_samples must be >= 1, got {self.plan_samples}")
        if self.plan_samples > 1 and not (self.needs_td_value and self.inverse_dynamics == "explicit"
                                          and self.window_has_states and not self.window_has_actions):
            raise ValueError("plan_samples > 1 ranks plans of states with the stage-0 value and acts with the explicit "
                             "head: it needs value_steps > 0 (with n_step, rtg_relative or td), inverse_dynamics "
                             "explicit and scheme rs or s")
        if self.rtg_relative and self.target_rule == "td":
            raise ValueError("target_rule td gives R = x V(s), but rtg_relative models R - V(s): use fixed or value")
        if self.bootstrap_steps is not None and self.bootstrap_steps < 1:
            raise ValueError(f"bootstrap_steps must be >= 1 or null, got {self.bootstrap_steps}")
        if self.rtg_discount is not None and not 0.0 < self.rtg_discount <= 1.0:
            raise ValueError(f"rtg_discount must be in (0, 1] or null, got {self.rtg_discount}")
        if not 1 <= self.num_scales <= MAX_SCALES:
            raise ValueError(f"num_scales must be in 1..{MAX_SCALES}, got {self.num_scales}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if not 1 <= self.replan_every < self.horizon:
            raise ValueError(f"replan_every must be in 1..horizon-1 ({self.horizon - 1}), got {self.replan_every}")
        if self.scale_schedule is not None:
            self.scale_schedule = tuple(int(v) for v in self.scale_schedule)
        self.scales  # validates the schedule

    @property
    def scales(self) -> tuple[int, ...]:
        """Token-map lengths l_1 < ... < l_K = H of the K temporal scales."""
        if self.scale_schedule is None:
            return scale_lengths(self.num_scales, self.horizon)
        s = self.scale_schedule
        if len(s) != self.num_scales or s[-1] != self.horizon or any(b <= a for a, b in zip(s, s[1:])) or s[0] < 1:
            raise ValueError(f"scale_schedule {s} must be {self.num_scales} increasing lengths ending at horizon {self.horizon}")
        return s

    @property
    def needs_td_value(self) -> bool:
        """Whether stage 0 learns IQL's V by TD (for n-step RTG labels, the td acting target or advantage weights)."""
        return (self.rtg_estimator == "n_step" or self.target_rule == "td" or self.rtg_relative
                or self.advantage_beta > 0)

    def stage_ends(self, steps: int) -> tuple[int, int]:
        """(stage 0's last step + 1, stage 1's last step + 1) of a fit of ``steps`` steps: stage 0 (the TD value)
        takes value_steps when needed, stage 1 (tokenizer) round(tokenizer_fraction * the rest), stage 2 the rest."""
        stage0_end = self.value_steps if self.needs_td_value else 0
        return stage0_end, stage0_end + int(round(self.tokenizer_fraction * (steps - stage0_end)))

    def first_policy_step(self, steps: int) -> int:
        """Stage 2's first step: before it the generator, which every plan comes from, is untrained
        (harness.config.first_policy_step; the harness evaluates periodically only after it)."""
        return self.stage_ends(steps)[1]

    @property
    def rtg_conditioned(self) -> bool:
        return self.rtg_mode == "condition"

    @property
    def window_has_states(self) -> bool:
        return self.scheme in ("rs", "s", "rsa")

    @property
    def window_has_actions(self) -> bool:
        return self.scheme in ("a", "a+cql", "rsa")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["scale_schedule"] is not None:
            d["scale_schedule"] = list(d["scale_schedule"])
        return d


def scale_lengths(num_scales: int, horizon: int) -> tuple[int, ...]:
    """Geometric schedule l_k = round(H^((k-1)/(K-1))), made strictly increasing, l_1 = 1, l_K = H.

    not in paper: VAR's image schedule (1,2,3,4,5,6,8,10,13,16) is roughly geometric; the same rule
    over time gives H=24, K=8: (1, 2, 3, 4, 6, 10, 15, 24). K = 1 is the single full-resolution scale.
    """
    if num_scales < 1 or num_scales > horizon:
        raise ValueError(f"num_scales {num_scales} must be in 1..horizon ({horizon})")
    if num_scales == 1:
        return (horizon,)
    raw = [round(horizon ** (k / (num_scales - 1))) for k in range(num_scales)]
    out: list[int] = []
    for k, v in enumerate(raw):
        v = max(v, out[-1] + 1 if out else 1)
        out.append(min(v, horizon - (num_scales - 1 - k)))  # leave room for the scales still to come
    out[-1] = horizon
    return tuple(out)


def resolve_config(overrides: dict[str, Any] | None) -> MageConfig:
    """Defaults updated by ``overrides``; an unknown key raises ValueError naming it."""
    overrides = dict(overrides or {})
    names = {f.name for f in dataclasses.fields(MageConfig)}
    for key in overrides:
        if key not in names:
            raise ValueError(f"unknown MAGE config key: {key!r}")
    return MageConfig(**overrides)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {'|'.join(choices)}, got {value!r}")
