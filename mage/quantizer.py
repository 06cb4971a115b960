"""Multi-scale residual quantiser with ONE shared codebook (paper Alg. 1/3; after VAR's VectorQuantizer2).

Features are 1-D temporal maps ``f_BCH`` (batch, codebook_dim, horizon). Scale k has l_k tokens.
Scale-down / scale-up are fixed linear maps over time (area average down, linear interpolation up:
the paper's "linear projection"); each scale then gets its own refinement conv Phi_k, as VAR does.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def scale_down(f_BCH: torch.Tensor, length: int) -> torch.Tensor:
    """[B, C, H] -> [B, C, length] by area averaging (identity when length == H)."""
    return f_BCH if f_BCH.shape[-1] == length else F.interpolate(f_BCH, size=length, mode="area")


def scale_up(z_BCl: torch.Tensor, horizon: int) -> torch.Tensor:
    """[B, C, l] -> [B, C, H] by linear interpolation (identity when l == H)."""
    return z_BCl if z_BCl.shape[-1] == horizon else F.interpolate(z_BCl, size=horizon, mode="linear", align_corners=False)


class Phi(nn.Module):
    """Per-scale refinement: h = (1 - r) x + r conv(x) (VAR's quant_resi)."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel_size=3, padding=1)
        self.ratio = ratio

    def forward(self, h_BCH: torch.Tensor) -> torch.Tensor:
        return h_BCH.mul(1 - self.ratio) + self.conv(h_BCH).mul_(self.ratio)


class MultiScaleQuantizer(nn.Module):
    """Residual quantisation over ``scales`` = (l_1, ..., l_K) with one codebook of ``vocab`` codes."""

    def __init__(self, vocab: int, dim: int, scales: tuple[int, ...], beta: float, phi_ratio: float,
                 dead_threshold: float = 1e-3) -> None:
        super().__init__()
        self.dead_threshold = dead_threshold
        self.vocab, self.dim, self.scales, self.beta = vocab, dim, tuple(scales), beta
        self.horizon = self.scales[-1]
        self.codebook = nn.Embedding(vocab, dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / vocab, 1.0 / vocab)
        self.phis = nn.ModuleList(Phi(dim, phi_ratio) for _ in self.scales)
        # uses of each code since the last dead-code restart (a buffer: saved and restored)
        self.register_buffer("usage_count", torch.zeros(vocab))

    def nearest(self, x_NC: torch.Tensor) -> torch.Tensor:
        """[N, C] -> [N] index of the nearest code (L2)."""
        cb = self.codebook.weight.float()
        x_NC = x_NC.float()
        d = x_NC.pow(2).sum(1, keepdim=True) + cb.pow(2).sum(1) - 2 * x_NC @ cb.t()
        return d.argmin(1)

    def forward(self, f_BCH: torch.Tensor, num_scales: int | None = None):
        """Quantise ``f_BCH`` over the first ``num_scales`` scales (default all).

        Returns (f_hat_BCH with straight-through gradient, tokens [list of [B, l_k]], vq_loss,
        and a stats dict with codebook usage (share of codes used) and perplexity of this batch).
        """
        K = len(self.scales) if num_scales is None else num_scales
        f = f_BCH.float()
        rest = f.detach().clone()
        f_hat = torch.zeros_like(rest)
        tokens: list[torch.Tensor] = []
        vq_loss = f.new_zeros(())
        counts = torch.zeros(self.vocab, device=f.device)
        for k in range(K):
            l = self.scales[k]
            down_BCl = scale_down(rest, l)
            idx_Bl = self.nearest(down_BCl.permute(0, 2, 1).reshape(-1, self.dim)).view(-1, l)
            tokens.append(idx_Bl)
            counts += torch.bincount(idx_Bl.flatten(), minlength=self.vocab).float()
            h = self.phis[k](scale_up(self.codebook(idx_Bl).permute(0, 2, 1), self.horizon))
            f_hat = f_hat + h
            rest = rest - h.detach()
            # VAR: codebook/Phi pulled to f (f detached), encoder committed by beta
            vq_loss = vq_loss + F.mse_loss(f_hat, f.detach()) + self.beta * F.mse_loss(f_hat.detach(), f)
        vq_loss = vq_loss / K
        f_hat_st = (f_hat.detach() - f.detach()) + f  # straight-through to the encoder
        probs = counts / counts.sum().clamp_min(1)
        stats = {
            "usage": float((counts > 0).float().mean()),
            "perplexity": float(torch.exp(-(probs * probs.clamp_min(1e-12).log()).sum())),
        }
        if self.training:
            self.usage_count += counts
        return f_hat_st, tokens, vq_loss, stats

    def tokens_to_scale_features(self, tokens: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per scale, Phi_k(scale_up(C[m_k])) [B, C, H]; their sum is f_hat."""
        return [self.phis[k](scale_up(self.codebook(t).permute(0, 2, 1), self.horizon)) for k, t in enumerate(tokens)]

    def soft_to_scale_features(self, onehots: list[torch.Tensor], first_scale: int = 0) -> list[torch.Tensor]:
        """Like tokens_to_scale_features for (straight-through) one-hots [B, l_k, V] of scales first_scale, ..."""
        cb = self.codebook.weight
        return [self.phis[k](scale_up((y.to(cb.dtype) @ cb).permute(0, 2, 1), self.horizon))
                for k, y in enumerate(onehots, start=first_scale)]

    def teacher_forcing_inputs(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        """VAR's idxBl_to_var_input: input of scale k+1 = scale_down(cumulative f_hat up to k, l_{k+1}).

        Returns [B, sum_{k>=2} l_k, C] (empty along dim 1 when K = 1).
        """
        B = tokens[0].shape[0]
        f_hat = torch.zeros(B, self.dim, self.horizon, device=tokens[0].device)
        outs = []
        for k in range(len(self.scales) - 1):
            f_hat = f_hat + self.phis[k](scale_up(self.codebook(tokens[k]).permute(0, 2, 1), self.horizon))
            outs.append(scale_down(f_hat, self.scales[k + 1]).permute(0, 2, 1))
        if not outs:
            return f_hat.new_zeros(B, 0, self.dim)
        return torch.cat(outs, dim=1)

    @torch.no_grad()
    def restart_dead_codes(self, rest_NC: torch.Tensor, generator: torch.Generator) -> int:
        """Move codes used by less than ``dead_threshold`` of all assignments since the last restart
        onto randomly chosen encoder vectors (Dhariwal et al.'s Jukebox-style restart), then reset the counts.

        ``rest_NC``: candidate vectors (per-position encoder features of the batch). Returns the count.
        """
        share = self.usage_count / self.usage_count.sum().clamp_min(1)
        self.usage_count.zero_()
        dead = (share < self.dead_threshold).nonzero().flatten()
        if dead.numel() == 0 or rest_NC.shape[0] == 0:
            return 0
        pick = torch.randint(0, rest_NC.shape[0], (dead.numel(),), generator=generator, device="cpu").to(rest_NC.device)
        self.codebook.weight.data[dead] = rest_NC[pick].to(self.codebook.weight.dtype)
        return int(dead.numel())
