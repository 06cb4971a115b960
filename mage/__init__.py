"""MAGE (ICLR 2026): multi-scale autoregressive generation for offline RL, for 1-D temporal token maps.

Modules (each one job):
  config.py            MageConfig: paper defaults (Tables 10, 25) and every unstated choice, marked
  data.py              normalisation statistics and H-step window sampling from an OfflineDataset
  tokenizer.py         MTAE encoder E(tau, R_0), decoder D(Z, R_0), Houlsby adapters for D'
  quantizer.py         multi-scale residual quantiser, ONE shared codebook, Phi refinement, dead-code restart
  generator.py         block-causal multi-scale transformer (SDPA, preallocated KV cache)
  inverse_dynamics.py  latent a_0 = I(sum_k z_k) and explicit I(s_0, s_1)
  critic.py            the A+CQL scheme's conservative critic
  model.py             all networks from one config; per-stage parameter sets
  training.py          stage 1 (tokenizer) and stage 2 (L_CE + lambda L_cond + L_inv) losses
  policy.py            greedy scale-by-scale generation with the KV cache, then the action
  agent.py             MageAgent: the Agent protocol (fit / reset / act / observe / state_dict)
"""
from mage.agent import MageAgent

__all__ = ["MageAgent"]
