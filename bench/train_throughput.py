"""MAGE stage-2 training throughput against a plain transformer doing the same token work, same run.

MAGE's step is MageAgent's stage-2 step: a batch sampled on the device by mage.data.WindowSampler
(vectorised gathers, no per-sample Python loop), ground-truth tokens from the frozen tokenizer, the
teacher-forced multi-scale transformer, L_CE + L_cond (Gumbel-softmax through the adapter decoder) +
L_inv, backward, gradient clipping and Adam (fused on CUDA), under bf16 autocast on CUDA.
The plain transformer has the same width, depth, heads, sequence length L = sum_k l_k and vocabulary,
embeds random token ids, runs a causal mask and takes the same CE loss with the same optimiser.
Data are a synthetic pen-sized dataset (obs 45, action 24, 100-step episodes): throughput does not
depend on the values.

    python bench/train_throughput.py --device cuda --batch-size 512 --steps 50 --out results/bench/train_h100.csv
    python bench/train_throughput.py --device cpu --profile smoke --batch-size 64 --steps 10
"""
from __future__ import annotations

import argparse
import statistics
import sys
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mage.agent import MageAgent  # noqa: E402
from mage.config import MageConfig  # noqa: E402
from mage.data import Normalizer, WindowSampler  # noqa: E402
from mage.generator import Block  # noqa: E402
from mage.model import MageModel  # noqa: E402
from mage.training import generator_losses  # noqa: E402
from timing import prepare_device, time_calls, write_csv  # noqa: E402  (bench/timing.py, beside this script)

OBS_DIM, ACT_DIM, EPISODE_LEN, EPISODES = 45, 24, 100, 500
WARMUP_STEPS = 5  # not in paper: allocator and kernel selection settle in a few steps


def synthetic_dataset(seed: int = 0) -> SimpleNamespace:
    """An OfflineDataset-shaped object (the fields WindowSampler and Normalizer read), pen-sized."""
    rng = np.random.default_rng(seed)
    n = EPISODE_LEN * EPISODES
    rewards = rng.random(n).astype(np.float32)
    rtg = np.concatenate([np.cumsum(r[::-1])[::-1] for r in rewards.reshape(EPISODES, EPISODE_LEN)])
    return SimpleNamespace(
        observations=rng.standard_normal((n, OBS_DIM)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, ACT_DIM)).astype(np.float32), rewards=rewards,
        returns_to_go=rtg.astype(np.float32), terminals=np.zeros(n, np.float32),
        episode_starts=np.arange(0, n + 1, EPISODE_LEN), action_low=-np.ones(ACT_DIM, np.float32),
        action_high=np.ones(ACT_DIM, np.float32), gamma=1.0, obs_dim=OBS_DIM, act_dim=ACT_DIM)


class PlainTransformer(nn.Module):
    """GPT-style: token embedding + positions, the same blocks as MAGE's generator, causal mask, LM head."""

    def __init__(self, vocab: int, length: int, dim: int, depth: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(1, length, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)
        self.register_buffer("mask", torch.ones(length, length, dtype=torch.bool).tril(), persistent=False)

    def forward(self, tokens_BL: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens_BL) + self.pos
        for blk in self.blocks:
            x = blk(x, self.mask)
        return self.head(self.norm(x))


def adam(params, lr: float, device: torch.device) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, fused=device.type == "cuda")


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def mage_step_fn(cfg: MageConfig, batch: int, device: torch.device):
    data = synthetic_dataset()
    norm = Normalizer.from_data(data, cfg.target_return_quantile, cfg.target_return_scale)
    model = MageModel(cfg, OBS_DIM, ACT_DIM).to(device)
    model.train()
    model.set_stage(2)
    params = model.stage_parameters(2)
    opt = adam(params, cfg.lr, device)
    sampler = WindowSampler(data, norm, model.layout, cfg.horizon, device)
    gen = torch.Generator().manual_seed(0)

    def step():
        b = sampler.sample(batch, gen)
        with autocast(device):
            loss, _ = generator_losses(model, b, None, cfg.gumbel_tau)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()

    return step, sum(cfg.scales)


def plain_step_fn(cfg: MageConfig, batch: int, device: torch.device):
    length = sum(cfg.scales)
    model = PlainTransformer(cfg.codebook_size, length, cfg.embed_dim, cfg.num_blocks, cfg.num_heads,
                             cfg.dropout).to(device).train()
    params = list(model.parameters())
    opt = adam(params, cfg.lr, device)

    def step():
        tokens = torch.randint(0, cfg.codebook_size, (batch, length + 1), device=device)
        with autocast(device):
            logits = model(tokens[:, :-1]).float()
        loss = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()

    return step, length


def throughput(device: str | torch.device = "cpu", batch: int = 512, steps: int = 50, profile: str = "paper",
               warmup: int = WARMUP_STEPS) -> pd.DataFrame:
    """Rows for MAGE stage 2 and the plain transformer: step_ms mean/std, samples/s, tokens/s."""
    device = torch.device(device)
    overrides = {k: v for k, v in MageAgent.PROFILES[profile].items() if k != "steps"}
    cfg = MageConfig(**overrides)
    torch.manual_seed(0)
    rows = []
    for name, make in (("mage_stage2", mage_step_fn), ("plain_transformer", plain_step_fn)):
        step, length = make(cfg, batch, device)
        times = time_calls(step, steps, device, warmup)
        mean = statistics.fmean(times)
        rows.append(dict(model=name, profile=profile, batch_size=batch, seq_len=length, step_ms=mean,
                         step_ms_std=statistics.pstdev(times), samples_per_s=batch / mean * 1e3,
                         tokens_per_s=batch * length / mean * 1e3, steps=steps, device=str(device)))
    df = pd.DataFrame(rows)
    df["ratio_to_plain"] = df.step_ms / df.step_ms.iloc[-1]
    return df


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=WARMUP_STEPS)
    ap.add_argument("--profile", default="paper", choices=["paper", "quick", "smoke"], help="model size")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.batch_size < 1 or args.steps < 1:
        print("error: --batch-size and --steps must be >= 1", file=sys.stderr)
        return 2
    if not prepare_device(args.device, args.threads):
        return 2
    df = throughput(args.device, args.batch_size, args.steps, args.profile, args.warmup)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"Training throughput on {name}, profile {args.profile}, batch {args.batch_size}")
    print(df[["model", "seq_len", "step_ms", "step_ms_std", "samples_per_s", "ratio_to_plain"]].to_string(
        index=False, float_format=lambda v: f"{v:.2f}"))
    write_csv(df, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
