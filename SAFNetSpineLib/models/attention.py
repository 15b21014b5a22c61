"""Self-attention over positions and over channels (DANet, Fu et al., CVPR 2019), in 3D.

Both modules are residual: ``out = gamma * attended + x`` with a learnable scalar
``gamma``. DANet initialises gamma to 0, which makes the attention an exact identity
at the start of training but also leaves its query/key/value weights without any
gradient on the first step. We initialise gamma to a small non-zero value
(:data:`GAMMA_INIT`): the network still starts close to "no attention", and every
parameter receives a gradient from the first backward pass.
"""

from __future__ import annotations

import torch
import torch.nn as nn

#: Initial value of the residual scale of both attention modules.
GAMMA_INIT = 0.1


def as_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, D, H, W) -> (B, N, C) with N = D*H*W; a free view for channels_last_3d input."""
    b, c = x.shape[:2]
    return x.permute(0, 2, 3, 4, 1).reshape(b, -1, c)


def from_tokens(tokens: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """(B, N, C) -> (B, C, D, H, W) with channels_last_3d strides (no copy)."""
    b, c, d, h, w = shape
    return tokens.reshape(b, d, h, w, c).permute(0, 4, 1, 2, 3)


class PositionAttention(nn.Module):
    """Position attention: every voxel is a softmax-weighted sum of all voxels.

    Query and key are 1x1x1 projections to C/8 channels, value keeps C channels. The
    affinity matrix is N x N with N = D*H*W, so use it on coarse feature maps only
    (SAFNet's high level: N = 18*16*8 = 2304, a 21 MB matrix in fp32).

    Args:
        channels: Input and output channels C (at least 8).
        gamma_init: Initial residual scale.
    """

    def __init__(self, channels: int, gamma_init: float = GAMMA_INIT) -> None:
        super().__init__()
        reduced = max(channels // 8, 1)
        self.query = nn.Conv3d(channels, reduced, 1)
        self.key = nn.Conv3d(channels, reduced, 1)
        self.value = nn.Conv3d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.tensor(float(gamma_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query = as_tokens(self.query(x))  # (B, N, C/8), N = D*H*W
        key = as_tokens(self.key(x))  # (B, N, C/8)
        value = as_tokens(self.value(x))  # (B, N, C)
        affinity = torch.softmax(torch.bmm(query, key.transpose(1, 2)), dim=-1)  # (B, N, N), rows sum to 1
        attended = torch.bmm(affinity, value)  # (B, N, C): voxel i = sum_j affinity[i, j] * value[j]
        return x + self.gamma * from_tokens(attended, x.shape)


class ChannelAttention(nn.Module):
    """Channel attention: every channel map is a softmax-weighted sum of all channel maps.

    As in DANet the weights are ``softmax(max(E) - E)`` for the Gram matrix E of the
    channel maps, which favours dissimilar channels; no projections are learned.

    Args:
        gamma_init: Initial residual scale.
    """

    def __init__(self, gamma_init: float = GAMMA_INIT) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.tensor(float(gamma_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = as_tokens(x)  # (B, N, C)
        gram = torch.bmm(tokens.transpose(1, 2), tokens)  # (B, C, C)
        weights = torch.softmax(gram.amax(dim=-1, keepdim=True) - gram, dim=-1)  # (B, C, C)
        attended = torch.bmm(tokens, weights.transpose(1, 2))  # (B, N, C): channel i = sum_j w[i, j] * map j
        return x + self.gamma * from_tokens(attended, x.shape)
