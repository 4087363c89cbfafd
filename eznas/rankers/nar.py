"""A NAR-style learned ranker for NB-201 (after Guo et al., ACM MM 2022, ``AlbertiPot/nar``; our code).

**Encoding** (after NAR's 31 x 4 x 4; ours is 35 x 4 x 4): NAR's channel 0 is the cell's op-code matrix
(M[i][j] = the op of edge i -> j: none 0, skip 1, conv1x1 2, conv3x3 3, avg_pool 4); we give each op its
own indicator matrix instead (channels 0-4, M_op[i][j] = 1 where edge i -> j is that op): a linear token
embedding of ordinal codes orders the ops by their code (README, Learned rankers: what it changed). Then,
for each of the 15 normal cells
(the two residual blocks left out), that cell's per-edge FLOPs matrix and params matrix: a conv's params
are k^2 C^2 + 2C (BN included) and its FLOPs params x H x W at the cell's width C (16 / 32 / 64) and
resolution (the dataset's / 1, 2, 4); pools, skips and ``none`` have 0. NAR feeds the raw counts; we feed
log1p(count) (the raw counts reach 1e6 and drown the positional encoding).

**Model**: each channel is a token (its 16 values -> Linear to ``d_model``), dropout, sinusoidal position,
LayerNorm, a post-LN Transformer encoder (``layers`` x ``heads``, FFN 4 d_model); a score head (flattened
tokens -> MLP -> s) and a tier head (flattened tokens -> MLP -> 5 logits). NAR's tier head matches each
arch to running means of every tier's encoder outputs through a 6-layer decoder; ours is a plain
classifier (a simplification, documented as such).

**Training**: 5 equal-count tiers by accuracy within the training split (tier 0 best), loss = cross-entropy on
the tiers + ReNAS's pairwise logistic rank loss on s; AdamW (0.9, 0.99, eps 1e-9, weight decay 0.01) with
NAR's warm-up schedule (lr = 0.07 d^-0.5 min(step^-0.5, step 30^-1.5)), batch 128, ``epochs`` epochs; the
checkpoint kept is the epoch with the best Kendall tau of s on the validation split (NAR keeps the best
validation tier accuracy). An arch's score is s.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import stats

from eznas.spaces.nb201 import OPS, parse_arch

TIERS = 5
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (from, to) of NB-201's 6 edges, in string order
KERNEL = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
STAGES = ((16, 1), (32, 2), (64, 4))  # (width, resolution divisor) of the 3 stages of 5 normal cells
CHANNELS = len(OPS) + 2 * 15  # an indicator matrix per op, then FLOPs and params of each normal cell


def encode(spec: str, resolution: int = 32) -> np.ndarray:
    """The CHANNELS x 4 x 4 tensor of an NB-201 cell string (see the module docstring)."""
    ops = [op for node in parse_arch(spec) for op, _ in node]
    out = np.zeros((CHANNELS, 4, 4), dtype=np.float32)
    for (i, j), op in zip(EDGES, ops):
        out[OPS.index(op), i, j] = 1.0
    channel = len(OPS)
    for width, divisor in STAGES:
        positions = (resolution // divisor) ** 2
        for _ in range(5):
            for (i, j), op in zip(EDGES, ops):
                if op in KERNEL:
                    params = KERNEL[op] ** 2 * width ** 2 + 2 * width
                    out[channel, i, j], out[channel + 1, i, j] = np.log1p(params * positions), np.log1p(params)
            channel += 2
    return out


@dataclass(frozen=True)
class NARConfig:
    d_model: int = 128
    layers: int = 6
    heads: int = 4
    dropout: float = 0.1
    epochs: int = 55
    batch_size: int = 128
    lr_mul: float = 0.07
    warmup: int = 30
    rank_weight: float = 1.0
    seed: int = 0


class NARModel(nn.Module):
    def __init__(self, c: NARConfig, tokens: int = CHANNELS, token_size: int = 16):
        super().__init__()
        self.embed = nn.Linear(token_size, c.d_model)
        self.dropout = nn.Dropout(c.dropout)
        position = torch.arange(tokens)[:, None] / torch.pow(10000, torch.arange(0, c.d_model, 2) / c.d_model)
        pe = torch.zeros(tokens, c.d_model)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(position), torch.cos(position)
        self.register_buffer("position", pe)
        self.norm = nn.LayerNorm(c.d_model, eps=1e-6)
        layer = nn.TransformerEncoderLayer(c.d_model, c.heads, 4 * c.d_model, c.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        flat = tokens * c.d_model
        self.score_head = nn.Sequential(nn.Linear(flat, 1024), nn.ReLU(), nn.Linear(1024, 1))
        self.tier_head = nn.Sequential(nn.Linear(flat, 256), nn.ReLU(), nn.Linear(256, TIERS))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, CHANNELS, 4, 4) -> (score (B,), tier logits (B, 5))."""
        h = self.norm(self.dropout(self.embed(x.flatten(2))) + self.position)
        h = self.encoder(h).flatten(1)
        return self.score_head(h).squeeze(1), self.tier_head(h)


def tiers_of(accuracy: np.ndarray) -> np.ndarray:
    """Equal-count tiers by accuracy, 0 the best (the remainder goes to the last tier, as NAR's)."""
    order = np.argsort(-accuracy, kind="stable")
    step = max(len(accuracy) // TIERS, 1)
    tiers = np.empty(len(accuracy), dtype=np.int64)
    tiers[order] = np.minimum(np.arange(len(accuracy)) // step, TIERS - 1)
    return tiers


def rank_loss(score: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ReNAS's pairwise logistic loss: mean over ordered pairs of log(1 + exp(-(s_i - s_j) sign(y_i - y_j)))."""
    diff = score[:, None] - score[None, :]
    sign = torch.sign(target[:, None] - target[None, :])
    off = ~torch.eye(len(score), dtype=torch.bool, device=score.device)
    return F.softplus(-diff * sign)[off].mean()


def kendall(score: np.ndarray, accuracy: np.ndarray) -> float:
    return float(stats.kendalltau(score, accuracy).statistic)


def train(features: np.ndarray, accuracy: np.ndarray, val_features: np.ndarray, val_accuracy: np.ndarray,
          c: NARConfig = NARConfig(), log=None) -> tuple[NARModel, dict]:  # noqa: ANN001 - log(epoch, dict)
    """Train on (features, accuracy), keep the epoch with the best validation Kendall tau; the model (eval mode)
    and the training record (per epoch: loss, validation tau)."""
    torch.manual_seed(c.seed)
    gen = torch.Generator().manual_seed(c.seed)
    model = NARModel(c)
    for p in model.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    opt = torch.optim.AdamW(model.parameters(), lr=1.0, betas=(0.9, 0.99), eps=1e-9, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: c.lr_mul * c.d_model ** -0.5 * min((i + 1) ** -0.5, (i + 1) * c.warmup ** -1.5))
    x, y = torch.from_numpy(features), torch.from_numpy(accuracy.astype(np.float32))
    tiers = torch.from_numpy(tiers_of(accuracy))
    xv = torch.from_numpy(val_features)
    best, best_state, history = -math.inf, None, []
    for epoch in range(c.epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        losses = []
        for start in range(0, len(x), c.batch_size):
            idx = order[start:start + c.batch_size]
            if len(idx) < 2:
                continue
            score, logits = model(x[idx])
            loss = F.cross_entropy(logits, tiers[idx]) + c.rank_weight * rank_loss(score, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        tau = kendall(predict(model, xv), val_accuracy)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_kendall": tau})
        if log:
            log(epoch + 1, history[-1])
        if tau > best:
            best, best_state = tau, {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model.eval(), {"config": asdict(c), "history": history, "best_val_kendall": best}


@torch.no_grad()
def predict(model: NARModel, features: np.ndarray | torch.Tensor, batch: int = 1024) -> np.ndarray:
    """The score s of each arch (eval mode, in batches)."""
    was = model.training
    model.eval()
    x = torch.as_tensor(features)
    out = np.concatenate([model(x[i:i + batch])[0].numpy() for i in range(0, len(x), batch)])
    model.train(was)
    return out
