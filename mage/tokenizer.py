"""MTAE encoder E(tau, R_0) and decoder D(Z, R_0) over H-step windows, plus Houlsby adapters for D'.

not in paper: the encoder/decoder are small residual 1-D conv stacks over time (kernel 3), the
temporal analogue of VQ-VAE's conv encoder; windows are [B, H, F] with F the per-step features.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBlock(nn.Module):
    """Pre-LN residual block: x + conv(gelu(conv(LN(x)))) over time; x is [B, H, W]."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.conv1 = nn.Conv1d(width, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, padding=1)

    def forward(self, x_BHW: torch.Tensor) -> torch.Tensor:
        h = self.norm(x_BHW).transpose(1, 2)
        h = self.conv2(F.gelu(self.conv1(h)))
        return x_BHW + h.transpose(1, 2)


class Adapter(nn.Module):
    """Houlsby et al. (2019) bottleneck adapter; zero-initialised up-projection, so D' starts as D.

    With ``cond_dim``, the condition (s_0, R_0) [B, cond_dim] is added inside the bottleneck (a learnt
    bias per window), so the adapter can move the decoded window to where the condition says it starts."""

    def __init__(self, width: int, bottleneck: int, cond_dim: int | None = None) -> None:
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.up = nn.Linear(bottleneck, width)
        self.cond = nn.Linear(cond_dim, bottleneck) if cond_dim else None
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x_BHW: torch.Tensor, cond_BD: torch.Tensor | None = None) -> torch.Tensor:
        h = self.down(x_BHW)
        if self.cond is not None:
            h = h + self.cond(cond_BD).unsqueeze(1)
        return x_BHW + self.up(F.gelu(h))


class Encoder(nn.Module):
    """E(tau, R_0): window [B, H, F] (+ R_0 [B, 1]) -> f_BCH [B, codebook_dim, H]."""

    def __init__(self, feat_dim: int, width: int, depth: int, code_dim: int, horizon: int, use_rtg: bool) -> None:
        super().__init__()
        self.inp = nn.Linear(feat_dim, width)
        self.pos = nn.Parameter(torch.zeros(1, horizon, width))
        self.rtg = nn.Linear(1, width) if use_rtg else None
        self.blocks = nn.ModuleList(ConvBlock(width) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, code_dim)

    def forward(self, x_BHF: torch.Tensor, rtg0_B1: torch.Tensor) -> torch.Tensor:
        h = self.inp(x_BHF) + self.pos
        if self.rtg is not None:
            h = h + self.rtg(rtg0_B1).unsqueeze(1)
        for blk in self.blocks:
            h = blk(h)
        return self.out(self.norm(h)).transpose(1, 2)


class Decoder(nn.Module):
    """D(Z, R_0): f_hat [B, C, H] (+ R_0) -> window [B, H, F]; with adapters it is D' (App. A.4.1)."""

    def __init__(self, feat_dim: int, width: int, depth: int, code_dim: int, horizon: int, use_rtg: bool,
                 adapter_dim: int | None, adapter_cond_dim: int | None = None) -> None:
        super().__init__()
        self.inp = nn.Linear(code_dim, width)
        self.pos = nn.Parameter(torch.zeros(1, horizon, width))
        self.rtg = nn.Linear(1, width) if use_rtg else None
        self.blocks = nn.ModuleList(ConvBlock(width) for _ in range(depth))
        self.adapters = (nn.ModuleList(Adapter(width, adapter_dim, adapter_cond_dim) for _ in range(depth))
                         if adapter_dim else None)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, feat_dim)

    def forward(self, f_BCH: torch.Tensor, rtg0_B1: torch.Tensor, use_adapters: bool = False,
                cond_BD: torch.Tensor | None = None) -> torch.Tensor:
        """``cond_BD``: (s_0, R_0) for adapters built with a condition (ignored otherwise)."""
        h = self.inp(f_BCH.transpose(1, 2)) + self.pos
        if self.rtg is not None:
            h = h + self.rtg(rtg0_B1).unsqueeze(1)
        for i, blk in enumerate(self.blocks):
            h = blk(h)
            if use_adapters and self.adapters is not None:
                h = self.adapters[i](h, cond_BD)
        return self.out(self.norm(h))

    def base_parameters(self) -> list[nn.Parameter]:
        """Parameters of D without the adapters (frozen in stage 2 under decoder_refinement=adapter)."""
        skip = {id(p) for p in self.adapters.parameters()} if self.adapters is not None else set()
        return [p for p in self.parameters() if id(p) not in skip]
