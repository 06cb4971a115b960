"""Trained MAGE runs acted with other choices, without retraining: the evaluation-only leads of issue 15.

    python bench/mage_leads.py results/runs/mage-maze2d-umaze-s{0,1,2,3}-* --episodes 50 \
        --variants rolled clamped fixed fixed:2 value:0.9 value:0.99 inv-generated --out results/bench/leads.json

Each run (its final checkpoint.pt) is evaluated under every variant, on the episodes the harness
would play (seed 10,000 + training seed), and the table prints mean ± SE over runs (seeds) with the
success rate and, on goal-reaching suites, the return of the episodes that reached the goal (how long
they stayed). Variants:

- ``trained``: the run as trained and configured (its own target rule, head and V(s));
- ``rolled`` / ``clamped`` / ``fixed[:x]``: the target rule of MageConfig (x scales the target);
- ``value:tau[:x[:n]]``: target rule "value", with the ReturnHead V(s) fitted here on the run's RTG labels
  (n updates per stage-1/2 step of the run, its own batches and optimiser, as training it beside the
  other stages does; nothing else changes), x scaling V;
- ``td[:tau[:x[:n]]]``: target rule "td", x times IQL's V(s): the run's own stage-0 value (``td`` or
  ``td::x``), or one fitted here by TD for n steps (default 20,000) at expectile tau when tau is given;
- ``iql-critic:RUN``: the candidates ranked by a trained IQL run's twin Q instead of the stage-0 Q (V(s) stays
  the stage-0 one; after ``critic`` or ``td:TAU``): whether IQL's critic would pick MAGE's candidates differently;
- ``decoder:adapted|base|anchored|switched[:v]``: the plan_decoder that turns the generated tokens into the plan
  (``switched:v``: D below V(s_0) = v, D' from v on; MageConfig.switch_value);
- ``critic[:tau[:n[:flags]]]``: IQL's V and twin Q fitted here by TD (n steps, default 20,000, expectile tau, default
  0.9) as stage 0 trains them, the acting target left as the run has it (for ``samples`` on runs without one);
  flags ``raw`` (fit on the raw rewards, IQL's units), ``relu`` (IQL's activation), ``seedK`` (the fit's seed K
  instead of the run's) and ``ensK`` (K draws, acting on their mean V and Q), joined by ``-``;
- ``samples:n[:rank[:beta[:T]]]``: act on the best of n plans (greedy + n - 1 sampled), ranked by the stage-0 value of
  the last state (rank ``value``), its mean over the plan's states (``mean_value``), the stage-0 Q of s_0
  and the plan's first action (``q``) or the plan's decoded R_0 (``return``); ``q_mean``: the n first actions
  averaged with IQL's weights exp(beta A) (MageConfig.plan_beta, default 3; empty keeps it); T: the sampled plans'
  token temperature (MageConfig.plan_temperature, default 1);
- ``stall:k[:r]``: the stall escape (MageConfig.stall_steps k, stall_radius r): a plan drawn token by token
  once the agent has stood within r (z-scored) of one point for k steps without reward;
- ``guidance:w``: classifier-free guidance w while acting (a run trained with rtg_dropout > 0);
- ``inv-generated``: the latent inverse dynamics refitted on the Z of the generator's greedy tokens
  (what it reads while acting) instead of the true Z, from the run's I, for ``--inverse-steps`` steps;
- ``explicit[:observed]``: the action from the explicit head I(s_0_hat, s_1_hat) of the decoded plan
  (``observed``: I(s_0, s_1_hat) from the observed state); ``latent``: from I(Z) (both heads are
  trained in stage 1, whichever acts).

``--summarise A.json B.json ...`` prints the table of earlier ``--out`` files instead of evaluating.
Runs load with the MageConfig of this checkout over what their checkpoint saved: a run trained
before a field existed gets that field's current default, so its model may not load.

On maze2d it also prints the share of the episodes that start outside the goal's reward radius and reach
it ("reached from outside"): an episode that starts in the goal cell (1 in 7 of the umaze starts) counts
as a success before the first action, so the plain success rate of an agent that never navigates is not 0.

It also prints how far R_t leaves the data's range (mean over episodes of the largest normalised R_t;
the data's is at most 1) and the mean start error |s_0_hat - s_0|^2 (z-scored) of the plans acted on.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mage.agent import MageAgent  # noqa: E402
from mage.data import WindowSampler  # noqa: E402
from mage.policy import generate  # noqa: E402
from mage.value import ReturnHead, TDValue  # noqa: E402


def load_run(run_dir: Path) -> tuple[MageAgent, dict]:
    """(the agent restored from the run's final checkpoint.pt, its result.json); a MageAgent for MAGE runs,
    the method's own agent for others (bench/goal_stay.py reads IQL runs too)."""
    from harness.methods import build_agent

    info = json.loads((run_dir / "result.json").read_text())
    agent = build_agent(info["method"], seed=info["seed"])
    agent.load_state_dict(torch.load(run_dir / "checkpoint.pt", weights_only=False)["agent"])
    return agent, info


def fit_return_head(agent: MageAgent, data, tau: float, seed: int) -> None:
    """The ReturnHead V(s) as target_rule "value" trains it beside stages 1-2: its own batches of the run's
    RTG labels and its own optimiser, value_updates steps per stage-1/2 step, through MageAgent._value_step;
    attached to ``agent`` in place."""
    cfg, model = agent.cfg, agent.model
    cfg.target_rule, cfg.value_expectile = "value", tau
    torch.manual_seed(seed)
    model.return_head = ReturnHead(model.obs_dim, model.latent_inverse.net[0].out_features)
    agent.opt_value = torch.optim.Adam(model.return_head.parameters(), lr=cfg.lr)
    sampler = agent._window_sampler(data, labelled=True)
    agent.sample_gen.manual_seed(seed)
    stage0 = cfg.value_steps if model.td_value is not None else 0
    for _ in range((agent.step - stage0) * cfg.value_updates):
        agent._value_step(sampler)
    model.return_head.eval()


CRITIC_TAU, CRITIC_STEPS = 0.9, 20_000   # a fitted critic's defaults: E's stage 0 (IQL's 20k steps at tau 0.9)


class Scaled(torch.nn.Module):
    """Multiplies its input by a constant: appended to a network fitted in other units."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class CriticEnsemble(torch.nn.Module):
    """K fitted critics read as one: V(s) [B, 1] and Q(s, a) [B] (each member's twin-Q minimum) averaged over the
    members, so acting (the td target, q_mean's weights) sees the mean of K draws instead of one draw's shape."""

    def __init__(self, members: list[TDValue]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, s0_BS: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(s0_BS) for member in self.members]).mean(0)

    def q(self, s_BS: torch.Tensor, a_BA: torch.Tensor) -> torch.Tensor:
        return torch.stack([member.q(s_BS, a_BA) for member in self.members]).mean(0)


ENSEMBLE_SEED_STRIDE = 1000   # member i of an ensemble is the fit of seed + 1000 i: member 0 is the single fit


def fit_td_value(agent: MageAgent, data, tau: float = CRITIC_TAU, steps: int = CRITIC_STEPS, seed: int = 0,
                 flags: tuple[str, ...] = ()) -> None:
    """IQL's V(s) by TD at expectile ``tau`` for ``steps`` steps, as stage 0 trains it; attached to ``agent``
    in place (the run's RTG labels, read already, do not change). ``flags``, where stage 0 differs from
    baselines/iql.py: "raw" fits V and Q on the raw rewards (IQL's units) instead of rewards / value_scale,
    then rescales their outputs to stage 0's units; "relu" uses ReLU instead of GELU in V and Q (IQL's;
    MageConfig.td_activation);
    "seedK" initialises and samples the fit with seed K instead of ``seed`` (another draw of the same fit);
    "ensK" fits K draws (seeds seed + 1000 i, i < K; member 0 is the single fit) and acts on their average
    (``CriticEnsemble``)."""
    unknown = [f for f in flags if f not in ("raw", "relu")
               and not (f[:4] == "seed" and f[4:].isdigit()) and not (f[:3] == "ens" and f[3:].isdigit() and int(f[3:]) > 0)]
    if unknown:
        raise SystemExit(f"mage_leads: unknown critic flag(s) {', '.join(unknown)}; use raw, relu, seedK, ensK (K > 0), "
                         "joined by -")
    cfg, model = agent.cfg, agent.model
    cfg.td_expectile = tau
    cfg.td_activation = "relu" if "relu" in flags else "gelu"
    seed = next((int(f[4:]) for f in flags if f.startswith("seed")), seed)
    members = next((int(f[3:]) for f in flags if f.startswith("ens")), 1)
    heads = [fit_one_critic(agent, data, steps, seed + ENSEMBLE_SEED_STRIDE * i, "raw" in flags) for i in range(members)]
    model.td_value = heads[0] if members == 1 else CriticEnsemble(heads)
    model.eval()


def fit_one_critic(agent: MageAgent, data, steps: int, seed: int, raw: bool) -> TDValue:
    """One TDValue fitted by ``steps`` stage-0 steps (agent.cfg's expectile and activation) from seed ``seed``;
    ``raw``: on the raw rewards, its outputs rescaled to stage 0's units."""
    cfg, model = agent.cfg, agent.model
    torch.manual_seed(seed)
    head = TDValue(model.obs_dim, model.act_dim, model.latent_inverse.net[0].out_features, cfg.td_activation)
    model.td_value = head   # _value_pretrain_step trains the model's td_value
    agent.opt_td = torch.optim.Adam(head.trainable_parameters(), lr=cfg.value_lr)
    sampler = WindowSampler(data, agent.norm, model.layout, cfg.horizon, agent.device, cfg.rtg_across_cuts)
    agent.sample_gen.manual_seed(seed)
    value_scale = agent.norm.value_scale
    if raw:
        agent.norm.value_scale = 1.0
    try:
        for _ in range(steps):
            agent._value_pretrain_step(sampler)
    finally:
        agent.norm.value_scale = value_scale
    if raw:
        head.v.append(Scaled(1.0 / value_scale))
        head.q1.net.append(Scaled(1.0 / value_scale))
        head.q2.net.append(Scaled(1.0 / value_scale))
    return head


def borrow_iql_critic(agent: MageAgent, iql_run: Path) -> None:
    """Make the stage-0 Q that ranks candidates (``td_value.q``) a trained IQL run's twin-Q minimum, in place;
    V(s) (the td target) stays the run's own. Q is returned in the MAGE value units q_mean expects
    (IQL's reward units / value_scale), so q_mean's weights are exactly IQL's exp(beta Q), normalised."""
    iql, info = load_run(iql_run)
    if info["method"] != "iql":
        raise SystemExit(f"mage_leads: iql-critic needs an IQL run, {iql_run} is {info['method']!r}")
    norm, value_scale = agent.norm, agent.norm.value_scale
    obs_mean, obs_std = (torch.as_tensor(x) for x in (norm.obs_mean, norm.obs_std))
    act_low, act_high = (torch.as_tensor(x) for x in (norm.act_low, norm.act_high))

    def q(s_BS: torch.Tensor, a_BA: torch.Tensor) -> torch.Tensor:
        obs = s_BS.float() * obs_std + obs_mean                                  # MAGE z-scores -> env units
        act = act_low + (a_BA.float().clamp(-1, 1) + 1) / 2 * (act_high - act_low)
        iql_obs, iql_act = iql.normaliser.obs(obs), iql.normaliser.to_unit_action(act)
        return torch.min(*iql.qf.both(iql_obs, iql_act)) / value_scale
    agent.model.td_value.q = q


def refit_inverse_on_generated(agent: MageAgent, data, steps: int, seed: int) -> None:
    """Fine-tune I on (Z of the greedy tokens for the data's (s_0, R_0), a_0), in place."""
    cfg, model = agent.cfg, agent.model
    model.eval()
    opt = torch.optim.Adam(model.latent_inverse.parameters(), lr=cfg.lr)
    sampler = agent._window_sampler(data, labelled=True)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = sampler.sample(cfg.batch_size, gen)
        _, _, f_gen = generate(model, model.condition(batch["s0"], batch["R0"]))
        loss = (model.latent_inverse(f_gen.float()) - batch["a0"]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    agent._actor = None   # the fast path reads the parameters in place; rebuilt anyway for safety


class TargetLog:
    """Wraps an agent; keeps the normalised R_t of every act call ([T, B]) and the start error
    |s_0_hat - s_0|^2 (z-scored states) of the plan it is acting on."""

    def __init__(self, agent: MageAgent):
        self.agent, self.rows, self.start_errors = agent, [], []
        original = agent._acting_target
        model = agent.model

        def logged(s0):
            R0 = original(s0)
            self.rows.append(R0[:, 0].cpu().numpy().copy())
            if model.layout.states is not None:
                with torch.no_grad():
                    _, _, f_hat = generate(model, model.condition(s0, R0))
                    plan_s0 = model.plan_window(f_hat, s0, R0)[:, 0, model.layout.states].float()
                self.start_errors.append(float((plan_s0 - s0).pow(2).mean()))
            return R0
        agent._acting_target = logged

    def max_per_episode(self) -> np.ndarray:
        return np.stack(self.rows).max(0) if self.rows else np.zeros(0)

    def mean_start_error(self) -> float | None:
        return float(np.mean(self.start_errors)) if self.start_errors else None


def variant_agent(base: MageAgent, variant: str, data, inverse_steps: int, seed: int) -> MageAgent:
    """A copy of ``base`` acting under ``variant``; "a+b" applies a, then b."""
    agent = copy.deepcopy(base)
    for part in variant.split("+"):
        apply_variant(agent, part, data, inverse_steps, seed)
    agent._actor = None
    agent.reset(1)
    return agent


def apply_variant(agent: MageAgent, variant: str, data, inverse_steps: int, seed: int) -> None:
    name, *args = variant.split(":")
    cfg = agent.cfg
    if name == "trained":
        return
    if name == "latent":
        cfg.inverse_dynamics = "latent"
    elif name in ("rolled", "clamped", "fixed"):
        cfg.target_rule = name
        if args:
            agent.norm.target_return *= float(args[0])
    elif name == "value":
        cfg.target_return_scale = float(args[1]) if len(args) > 1 else 1.0
        cfg.value_updates = int(args[2]) if len(args) > 2 else 1
        fit_return_head(agent, data, float(args[0]), seed)
    elif name == "td":
        cfg.target_rule = "td"
        cfg.target_return_scale = float(args[1]) if len(args) > 1 and args[1] else 1.0
        if args and args[0]:
            fit_td_value(agent, data, float(args[0]), int(args[2]) if len(args) > 2 else CRITIC_STEPS, seed)
        elif agent.model.td_value is None:
            raise SystemExit(f"mage_leads: variant {variant!r}: the run has no stage-0 value; give td:TAU to fit one")
    elif name == "critic":   # the stage-0 twin Q and V beside the run, the acting target left as trained
        fit_td_value(agent, data, float(args[0]) if args and args[0] else CRITIC_TAU,
                     int(args[1]) if len(args) > 1 and args[1] else CRITIC_STEPS, seed,
                     tuple(args[2].split("-")) if len(args) > 2 else ())
    elif name == "iql-critic":
        if agent.model.td_value is None:
            raise SystemExit(f"mage_leads: variant {variant!r} replaces the stage-0 Q: put critic or td:TAU before it")
        borrow_iql_critic(agent, Path(args[0]))
    elif name == "decoder":
        cfg.plan_decoder = args[0]
        if len(args) > 1:
            cfg.switch_value = float(args[1])
    elif name == "samples":
        cfg.plan_samples = int(args[0])
        cfg.plan_rank = args[1] if len(args) > 1 else "value"
        if len(args) > 2 and args[2]:
            cfg.plan_beta = float(args[2])
        if len(args) > 3:
            cfg.plan_temperature = float(args[3])
    elif name == "guidance":
        cfg.guidance = float(args[0])
    elif name == "stall":
        cfg.stall_steps = int(args[0])
        cfg.stall_radius = float(args[1]) if len(args) > 1 else cfg.stall_radius
    elif name == "inv-generated":
        refit_inverse_on_generated(agent, data, inverse_steps, seed)
    elif name == "explicit":
        cfg.inverse_dynamics = "explicit"
        cfg.explicit_from = args[0] if args else "plan"
    else:
        raise SystemExit(f"mage_leads: unknown variant {variant!r}")


def starts_inside_goal(key: str, episodes: int, seed: int) -> np.ndarray | None:
    """[episodes] bool: whether episode i (env seed ``seed + i``, as ``evaluate`` plays it) starts within the
    reward radius of the goal; None on environments whose reset does not name a goal (info["goal"])."""
    from suites.envs import make_env
    from suites.mazes import REWARD_RADIUS
    from suites.registry import dataset_spec

    env = make_env(dataset_spec(key))
    try:
        inside = []
        for i in range(episodes):
            obs, info = env.reset(seed=seed + i)
            if "goal" not in info:
                return None
            inside.append(np.linalg.norm(np.asarray(obs[:2]) - info["goal"]) <= REWARD_RADIUS)
        return np.array(inside)
    finally:
        env.close()


def reached_from_outside(success: np.ndarray, inside: np.ndarray | None) -> float | None:
    """Share of the episodes starting outside the goal radius (``inside`` False) that reached the goal
    (``success``, [episodes] bool); None without start flags or when every episode starts inside."""
    if inside is None or not success.size or inside.all():
        return None
    return float(success[~inside].mean())


def main() -> None:
    from harness.runs import eval_seed
    from suites.evaluation import evaluate
    from suites.registry import load_offline_dataset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path, help="results/runs/<mage run id> folders (one per seed)")
    ap.add_argument("--summarise", nargs="+", type=Path, metavar="JSON", help="print the table of earlier --out files")
    ap.add_argument("--variants", nargs="+", default=["rolled", "clamped", "fixed", "value:0.9"])
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--inverse-steps", type=int, default=2000)
    ap.add_argument("--out", type=Path, help="JSON of every figure")
    args = ap.parse_args()
    if args.summarise:
        saved = [json.loads(path.read_text()) for path in args.summarise]
        rows = [row for one in saved for row in one["rows"]]
        print("\n".join(one["command"] for one in saved))
        print(summary_table(rows, len(rows[0]["normalized"])))
        return
    torch.set_num_threads(1)
    rows = []
    for run_dir in args.runs:
        base, info = load_run(run_dir)
        data = load_offline_dataset(info["dataset"], info.get("data_profile") or info["profile"])
        inside = starts_inside_goal(info["dataset"], args.episodes, eval_seed(info["seed"]))
        fitted = {}   # "critic..." -> the run with that critic fitted (seeded, so one fit serves every variant)
        for variant in args.variants:
            first, _, rest = variant.partition("+")
            start = base
            if first.startswith("critic"):
                if first not in fitted:
                    fitted[first] = variant_agent(base, first, data, args.inverse_steps, info["seed"])
                start, first = fitted[first], "trained"
            agent = variant_agent(start, "+".join(filter(None, (first, rest))), data, args.inverse_steps, info["seed"])
            log = TargetLog(agent)
            result = evaluate(agent, info["dataset"], episodes=args.episodes, seed=eval_seed(info["seed"]))
            success = np.asarray(result.success if result.success is not None else [], bool)
            row = {"run": run_dir.name, "seed": info["seed"], "variant": variant, "score": float(result.normalized.mean()),
                   "success": float(success.mean()) if success.size else None,
                   "return_given_success": float(result.returns[success].mean()) if success.any() else None,
                   "reached_from_outside": reached_from_outside(success, inside),
                   "max_R": float(log.max_per_episode().mean()), "plan_start_error": log.mean_start_error(),
                   "normalized": result.normalized.tolist()}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "normalized"}), flush=True)
    print(summary_table(rows, args.episodes))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=1))


def summary_table(rows: list[dict], episodes: int) -> str:
    lines = [f"| variant | score, mean ± SE over seeds ({episodes} episodes each) | per seed | success | reached from outside "
             "| return given success | max normalised R_t | plan start error |", "|---|---|---|---|---|---|---|---|"]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        sel = [r for r in rows if r["variant"] == variant]
        scores = np.array([r["score"] for r in sel])
        se = scores.std(ddof=1) / np.sqrt(len(scores)) if len(scores) > 1 else float("nan")
        mean = lambda key: (np.mean([r[key] for r in sel if r.get(key) is not None])
                            if any(r.get(key) is not None for r in sel) else float("nan"))
        lines.append(f"| {variant} | {scores.mean():.1f} ± {se:.1f} | {', '.join(f'{s:.1f}' for s in scores)} | "
                     f"{mean('success'):.2f} | {mean('reached_from_outside'):.2f} | {mean('return_given_success'):.0f} | {mean('max_R'):.2f} | "
                     f"{mean('plan_start_error'):.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
