"""The grokking validator's networks: the MLP (the default) and the paper's small transformer.

Its own module because the architectures are independent of the arms and the training loop; the
arms (``grokking_arms``) only need to know which layers ELR projects. ``plastic_rl.tools.grokking``
re-exports every name.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.nn import functional as F

from plastic_rl.norm import insert_norm


class MLP(nn.Module):
    """Shared token embedding, the two embeddings concatenated, one hidden ReLU layer, linear read-out."""

    def __init__(self, p: int, embed: int = 128, hidden: int = 256):
        super().__init__()
        self.embed = nn.Embedding(p, embed)
        self.net = nn.Sequential(nn.Linear(2 * embed, hidden), nn.ReLU(), nn.Linear(hidden, p))

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        return self.net(self.embed(xy).flatten(1))

    def output_layers(self) -> list[str]:
        return ["net.2"]


class Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.attn_norm = nn.RMSNorm(d)
        self.attn = Attention(d, heads)
        self.mlp_norm = nn.RMSNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d, bias=False), nn.ReLU(), nn.Linear(4 * d, d, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    """The paper's small transformer: 2 pre-norm blocks, 4 heads, RMSNorm before attention and MLP, no biases.

    Input "x y =" (token p is "="), causal attention, the logits read at "=". A final RMSNorm before
    the read-out makes the residual stream's overall scale irrelevant to the output.
    """

    def __init__(self, p: int, d: int = 128, heads: int = 4, layers: int = 2):
        super().__init__()
        self.p = p
        self.tok = nn.Embedding(p + 1, d)
        self.pos = nn.Embedding(3, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.norm = nn.RMSNorm(d)
        self.unembed = nn.Linear(d, p, bias=False)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        eq = torch.full((xy.shape[0], 1), self.p, dtype=xy.dtype, device=xy.device)
        tokens = torch.cat([xy, eq], dim=1)
        h = self.tok(tokens) + self.pos.weight
        for block in self.blocks:
            h = block(h)
        return self.unembed(self.norm(h[:, -1]))

    def output_layers(self) -> list[str]:
        return ["unembed"]

    def hidden_layers(self) -> list[str]:
        """The weight matrices ELR projects (``include=``): everything but the embeddings and the read-out."""
        names = []
        for i in range(len(self.blocks)):
            names += [f"blocks.{i}.attn.qkv", f"blocks.{i}.attn.proj", f"blocks.{i}.mlp.0", f"blocks.{i}.mlp.2"]
        return names


def build_model(cfg: argparse.Namespace, normalized: bool) -> nn.Module:
    if cfg.model == "mlp":
        model = MLP(cfg.p, cfg.embed, cfg.hidden)
        if normalized:
            insert_norm(model, kind=cfg.norm)  # net.0 -> LayerNorm -> ReLU; net.2 (read-out) untouched
        return model
    return Transformer(cfg.p, cfg.embed)
