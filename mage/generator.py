"""Multi-scale condition-guided transformer (paper §3.2, eq. 4-5; after VAR's var.py).

The sequence has L = sum_k l_k positions: scale 1's positions carry the condition (s_0, R_0)
(VAR's start-of-sequence), scale k > 1's positions carry the teacher-forcing input
scale_down(f_hat_{<k}, l_k). A block-causal mask lets a position see every coarser scale and its own.
Position p's logits predict token p of the scale it belongs to.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def block_causal_mask(scales: tuple[int, ...], rtg_in_fine_scales: bool = True) -> torch.Tensor:
    """[L, L] bool, True = may attend. Without RTG in fine scales, scales k > 1 cannot see scale 1's
    (R_0-carrying) condition positions, so R_0 reaches them only through the chosen tokens (Table 7)."""
    levels = torch.cat([torch.full((l,), k) for k, l in enumerate(scales)])
    mask = levels[None, :] <= levels[:, None]
    if not rtg_in_fine_scales:
        mask &= ~((levels[:, None] > 0) & (levels[None, :] == 0))
    return mask


class SelfAttention(nn.Module):
    """Multi-head attention through F.scaled_dot_product_attention with an optional preallocated KV cache."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, dim // heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.k_cache: torch.Tensor | None = None  # [B, heads, L, head_dim], written scale by scale
        self.v_cache: torch.Tensor | None = None

    def forward(self, x_BLD: torch.Tensor, mask_LL: torch.Tensor, cache_at: int | None = None) -> torch.Tensor:
        B, L, D = x_BLD.shape
        q, k, v = self.qkv(x_BLD).view(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if cache_at is not None:  # write this scale's keys/values; attend over the whole (masked) cache
            self.k_cache[:, :, cache_at:cache_at + L] = k.to(self.k_cache.dtype)
            self.v_cache[:, :, cache_at:cache_at + L] = v.to(self.v_cache.dtype)
            k, v = self.k_cache.to(q.dtype), self.v_cache.to(q.dtype)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_LL, dropout_p=p)
        return self.proj(out.transpose(1, 2).reshape(B, L, D))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache_at: int | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), mask, cache_at))
        return x + self.mlp(self.ln2(x))


class MultiScaleTransformer(nn.Module):
    """p(m_k | m_<k, s_0, R_0) for all k at once (teacher forcing) or scale by scale (KV cache)."""

    def __init__(self, cond_dim: int, code_dim: int, vocab: int, scales: tuple[int, ...], dim: int, depth: int,
                 heads: int, dropout: float, rtg_in_fine_scales: bool, null_rtg: bool = False) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.starts = [sum(self.scales[:k]) for k in range(len(self.scales))]
        self.length = sum(self.scales)
        self.rtg_in_fine_scales = rtg_in_fine_scales
        self.cond_embed = nn.Linear(cond_dim, dim)
        # classifier-free guidance (VAR's class dropout): a learnt embedding stands for "R_0 not given"
        self.rtg_null = nn.Parameter(torch.zeros(dim)) if null_rtg else None
        self.word_embed = nn.Linear(code_dim, dim)
        self.pos_embed = nn.Parameter(torch.randn(1, self.length, dim) * 0.02)
        self.level_embed = nn.Embedding(len(self.scales), dim)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(depth))
        self.head_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)
        self.drop = nn.Dropout(dropout)
        levels = torch.cat([torch.full((l,), k, dtype=torch.long) for k, l in enumerate(self.scales)])
        self.register_buffer("levels", levels, persistent=False)
        self.register_buffer("mask", block_causal_mask(self.scales, rtg_in_fine_scales), persistent=False)

    def _conditions(self, cond_BD: torch.Tensor, rtg_index: int | None,
                    rtg_drop_B: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedded condition for scale 1 and for scales k > 1 (R_0 zeroed there when Table 7 asks).
        ``rtg_drop_B`` [B] bool: rows whose R_0 is replaced by the null embedding (classifier-free guidance)."""
        if rtg_drop_B is not None and rtg_index is not None:
            keep = torch.ones_like(cond_BD)
            keep[:, rtg_index] = (~rtg_drop_B).to(cond_BD.dtype)
            cond_BD = cond_BD * keep
            full = self.cond_embed(cond_BD) + rtg_drop_B[:, None].to(cond_BD.dtype) * self.rtg_null
        else:
            full = self.cond_embed(cond_BD)
        if self.rtg_in_fine_scales or rtg_index is None:
            return full, full
        no_rtg = cond_BD.clone()
        no_rtg[:, rtg_index] = 0
        return full, self.cond_embed(no_rtg)

    def _embed_scale(self, k: int, c_first: torch.Tensor, c_fine: torch.Tensor, inp_BlC: torch.Tensor | None) -> torch.Tensor:
        s, l = self.starts[k], self.scales[k]
        pos = self.pos_embed[:, s:s + l] + self.level_embed.weight[k]
        if k == 0:
            return c_first.unsqueeze(1) + pos
        return self.word_embed(inp_BlC) + c_fine.unsqueeze(1) + pos

    def forward(self, cond_BD: torch.Tensor, tf_input_BLC: torch.Tensor, rtg_index: int | None = None,
                num_scales: int | None = None, rtg_drop_B: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits [B, L, V] of the first ``num_scales`` scales (default all; L is their total
        length). ``tf_input_BLC``: [B, L - l_1, code_dim] from MultiScaleQuantizer.teacher_forcing_inputs."""
        K = len(self.scales) if num_scales is None else num_scales
        c_first, c_fine = self._conditions(cond_BD, rtg_index, rtg_drop_B)
        parts = [self._embed_scale(0, c_first, c_fine, None).expand(cond_BD.shape[0], -1, -1)]
        off = 0
        for k in range(1, K):
            l = self.scales[k]
            parts.append(self._embed_scale(k, c_first, c_fine, tf_input_BLC[:, off:off + l]))
            off += l
        x = self.drop(torch.cat(parts, dim=1))
        n = x.shape[1]
        for blk in self.blocks:
            x = blk(x, self.mask[:n, :n])
        return self.head(self.head_norm(x))

    def allocate_cache(self, batch: int, device: torch.device, dtype: torch.dtype) -> None:
        """Preallocate every block's KV cache [B, heads, L, head_dim] (static shapes for CUDA graphs)."""
        for blk in self.blocks:
            a = blk.attn
            shape = (batch, a.heads, self.length, a.head_dim)
            if a.k_cache is None or a.k_cache.shape != shape or a.k_cache.device != device or a.k_cache.dtype != dtype:
                a.k_cache = torch.zeros(shape, device=device, dtype=dtype)
                a.v_cache = torch.zeros(shape, device=device, dtype=dtype)

    def scale_logits(self, k: int, cond_BD: torch.Tensor, inp_BlC: torch.Tensor | None,
                     rtg_index: int | None = None, rtg_drop_B: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, l_k, V] of scale k, writing its keys/values into the cache (scales in order)."""
        c_first, c_fine = self._conditions(cond_BD, rtg_index, rtg_drop_B)
        x = self._embed_scale(k, c_first, c_fine, inp_BlC)
        if k == 0:
            x = x.expand(cond_BD.shape[0], -1, -1)
        s, l = self.starts[k], self.scales[k]
        mask = self.mask[s:s + l]
        for blk in self.blocks:
            x = blk(x, mask, cache_at=s)
        return self.head(self.head_norm(x))
