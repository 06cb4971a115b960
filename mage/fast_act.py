"""The optimised acting path of a trained MageModel: ``FastActor(model, B, device).act(s0_BS, R0_B1)``.

Gives the actions of ``mage.policy.plan_actions(model, s0, R0, steps=1)`` (the eager path) for a fixed
batch size B, faster:

- static shapes: the KV caches [depth, B, heads, L, head_dim] and the inputs/outputs are allocated once;
- no attention mask: under the block-causal mask, the keys a scale sees are one contiguous slice of
  the cache (positions [0, end of scale k), or [l_1, end) when R_0 is kept out of the fine scales,
  Table 7), so each scale attends over that slice with plain SDPA instead of a masked full-L call;
- the condition embedding is computed once per action, not once per scale;
- dropout modules are skipped (acting is always deterministic), so the model's train/eval mode does not matter;
- on CUDA: the transformer runs in bf16 from bf16 weight mirrors (re-copied from the parameters at
  every action, so optimiser steps and load_state_dict reach it), the residual stream, layer norms,
  quantiser and action heads stay fp32 (what bf16 autocast does), and the whole generation + decode +
  inverse dynamics is captured once as a CUDA graph and replayed (one launch per action);
- on CPU: torch.inference_mode and the above (CUDA graphs do not exist there).

The model's parameters are used in place (not copied), so a FastActor stays valid while training goes
on; only moving the model (``.to``) or replacing parameter tensors needs a new FastActor.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from mage.model import MageModel
from mage.quantizer import scale_down, scale_up

GRAPH_WARMUP_CALLS = 3  # PyTorch's CUDA-graph recipe: a few eager calls on a side stream before capture


class FastActor:
    """Acts for exactly ``batch_size`` parallel episodes; ``act(s0_BS, R0_B1)`` -> normalised actions [B, A]."""

    def __init__(self, model: MageModel, batch_size: int, device: str | torch.device | None = None,
                 bf16: bool | None = None, cuda_graph: bool | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        param = next(model.parameters())
        self.device = torch.device(device) if device is not None else param.device
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        if param.device != self.device:
            raise ValueError(f"model is on {param.device}, FastActor asked for {self.device}")
        on_cuda = self.device.type == "cuda"
        self.model, self.batch_size = model, int(batch_size)
        self.dtype = torch.bfloat16 if (on_cuda if bf16 is None else bf16) else param.dtype
        self.use_graph = on_cuda if cuda_graph is None else cuda_graph
        if self.use_graph and not on_cuda:
            raise ValueError("CUDA graphs need a CUDA device")
        gen = model.generator
        attn = gen.blocks[0].attn
        self.guidance = model.cfg.guidance
        # classifier-free guidance: the unconditional rows run as a second half of the batch
        self.rows = 2 * self.batch_size if self.guidance != 1.0 else self.batch_size
        shape = (len(gen.blocks), self.rows, attn.heads, gen.length, attn.head_dim)
        self.k_cache = torch.zeros(shape, device=self.device, dtype=self.dtype)
        self.v_cache = torch.zeros(shape, device=self.device, dtype=self.dtype)
        # transformer matrices in the compute dtype: the parameters themselves, or synced mirrors
        self._sources = {name: p for name, p in gen.named_parameters() if _is_matmul_parameter(name)}
        self._mirrors = {name: (p if p.dtype == self.dtype else p.detach().to(self.dtype))
                         for name, p in self._sources.items()}
        # bf16 mirrors are re-copied from the parameters at the start of every action (inside the CUDA
        # graph: one ~50 us pass over 25M values on an H100), so optimiser steps and load_state_dict
        # always reach the actor with no bookkeeping
        self._mirror_pairs = [(m, p) for m, p in zip(self._mirrors.values(), self._sources.values()) if m is not p]
        self._graph: torch.cuda.CUDAGraph | None = None
        self._s0 = torch.zeros(self.batch_size, model.obs_dim, device=self.device)
        self._R0 = torch.zeros(self.batch_size, 1, device=self.device)
        self._out: torch.Tensor | None = None

    # ------------------------------------------------------------------ public
    def act(self, s0_BS: torch.Tensor, R0_B1: torch.Tensor) -> torch.Tensor:
        """Normalised (s_0 [B, obs_dim], R_0 [B, 1]) -> normalised actions a_0 [B, act_dim] (a new tensor)."""
        expected = (self.batch_size, self.model.obs_dim)
        if tuple(s0_BS.shape) != expected or tuple(R0_B1.shape) != (self.batch_size, 1):
            raise ValueError(f"FastActor for B={self.batch_size} needs s0 {expected} and R0 ({self.batch_size}, 1), "
                             f"got {tuple(s0_BS.shape)} and {tuple(R0_B1.shape)}")
        if not self.use_graph:
            with torch.inference_mode():
                return self._forward(s0_BS.to(self.device, torch.float32), R0_B1.to(self.device, torch.float32))
        self._s0.copy_(s0_BS)
        self._R0.copy_(R0_B1)
        if self._graph is None:
            self._capture()
        self._graph.replay()
        return self._out.clone()

    # ------------------------------------------------------------------ internals
    def _capture(self) -> None:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(GRAPH_WARMUP_CALLS):
                self._forward(self._s0, self._R0)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.no_grad():
            self._out = self._forward(self._s0, self._R0)
        self._graph = graph

    def _linear(self, x: torch.Tensor, module_name: str) -> torch.Tensor:
        return F.linear(x, self._mirrors[module_name + ".weight"], self._mirrors[module_name + ".bias"])

    def _forward(self, s0_BS: torch.Tensor, R0_B1: torch.Tensor) -> torch.Tensor:
        model, gen, q = self.model, self.model.generator, self.model.quantizer
        B, dt = self.batch_size, self.dtype
        if self._mirror_pairs:
            torch._foreach_copy_([m for m, _ in self._mirror_pairs], [p.detach() for _, p in self._mirror_pairs])
        cond = model.condition(s0_BS, R0_B1)
        guided = self.rows != B
        drop = None
        if guided:
            cond = torch.cat([cond, cond])
            drop = torch.arange(self.rows, device=self.device) >= B
        c_first, c_fine = gen._conditions(cond, model.rtg_index, drop)
        f_hat = torch.zeros(B, q.dim, q.horizon, device=self.device)
        inp = None
        for k, l in enumerate(gen.scales):
            s = gen.starts[k]
            pos = gen.pos_embed[:, s:s + l] + gen.level_embed.weight[k]
            if k == 0:
                x = c_first.unsqueeze(1) + pos
            else:
                x = gen.word_embed(torch.cat([inp, inp]) if guided else inp) + c_fine.unsqueeze(1) + pos
            first_key = 0 if (k == 0 or gen.rtg_in_fine_scales) else gen.scales[0]
            for i, blk in enumerate(gen.blocks):
                x = self._block(i, blk, x, s, l, first_key)
            h = F.layer_norm(x, (x.shape[-1],), gen.head_norm.weight, gen.head_norm.bias, gen.head_norm.eps)
            logits = self._linear(h.to(dt), "head")
            if guided:
                logits = logits[B:] + self.guidance * (logits[:B] - logits[B:])
            tok = logits.argmax(-1)
            f_hat = f_hat + q.phis[k](scale_up(q.codebook(tok).permute(0, 2, 1), q.horizon))
            if k + 1 < len(gen.scales):
                inp = scale_down(f_hat, gen.scales[k + 1]).permute(0, 2, 1)
        return self._action_head(f_hat, s0_BS, R0_B1)

    def _block(self, i: int, blk, x_BlD: torch.Tensor, start: int, length: int, first_key: int) -> torch.Tensor:
        """One transformer block for scale positions [start, start + length): fp32 residual, dtype matmuls."""
        a, dt = blk.attn, self.dtype
        B, D = x_BlD.shape[0], x_BlD.shape[-1]
        pre = f"blocks.{i}."
        h = F.layer_norm(x_BlD, (D,), blk.ln1.weight, blk.ln1.bias, blk.ln1.eps).to(dt)
        q, k, v = self._linear(h, pre + "attn.qkv").view(B, length, 3, a.heads, a.head_dim).permute(2, 0, 3, 1, 4)
        end = start + length
        self.k_cache[i, :, :, start:end] = k
        self.v_cache[i, :, :, start:end] = v
        out = F.scaled_dot_product_attention(q, self.k_cache[i, :, :, first_key:end], self.v_cache[i, :, :, first_key:end])
        x_BlD = x_BlD + self._linear(out.transpose(1, 2).reshape(B, length, D), pre + "attn.proj")
        h = F.layer_norm(x_BlD, (D,), blk.ln2.weight, blk.ln2.bias, blk.ln2.eps).to(dt)
        h = F.gelu(self._linear(h, pre + "mlp.0"))
        return x_BlD + self._linear(h, pre + "mlp.2")

    def _action_head(self, f_hat_BCH: torch.Tensor, s0_BS: torch.Tensor, R0_B1: torch.Tensor) -> torch.Tensor:
        """a_0 [B, A] from f_hat exactly as plan_actions(steps=1) does (decoded window when needed)."""
        model, cfg, lay = self.model, self.model.cfg, self.model.layout
        if lay.actions is None and cfg.inverse_dynamics == "latent":
            return model.latent_inverse(f_hat_BCH.float())
        x_hat = model.plan_window(f_hat_BCH, s0_BS, R0_B1).float()
        if lay.actions is not None:  # schemes a, a+cql, rsa: the decoded window holds the actions
            return x_hat[:, 0, lay.actions].clamp(-1, 1)
        states = x_hat[:, :, lay.states]
        start = s0_BS if cfg.explicit_from == "observed" else states[:, 0]
        return model.explicit_inverse(start, states[:, 1])


def _is_matmul_parameter(name: str) -> bool:
    """Weights and biases of the transformer's linear layers (run in the compute dtype): qkv, proj, MLP, head.
    Biases are mirrored too, so no per-call cast kernels sit between the matmuls."""
    return (name.startswith("blocks.") and (".attn." in name or ".mlp." in name)) or name in ("head.weight", "head.bias")
