"""3D CFNet: co-occurrent feature network (Zhang et al., "Co-occurrent Features in
Semantic Segmentation", CVPR 2019), adapted to 3D with a coarse-to-fine decoder.

"CFNet" in the SAFNet paper's comparison table is cited without architecture
details; we read it as Zhang et al.'s network, the scene-context segmentation model
of that name. Our interpretation:

* Encoder: :class:`.blocks.ResidualEncoder` (1/16 in-plane output stride). The
  original uses a dilated ResNet at output stride 8; at 1/8 our N = D*H*W would be
  9216 and the N x N co-occurrence matrix 340 MB, so we stay at 1/16 (N = 2304).
* Aggregated co-occurrent feature (ACF) module: a 3x3x3 CBR reduces the features;
  the co-occurrence probability of target voxel i and source voxel j is
  ``softmax_j(q_i . k_j)`` with 1x1x1 query/key projections; the co-occurrent context
  of voxel i is the probability-weighted sum of 1x1x1 value projections. It is
  concatenated with the reduced features and with a global-pooling branch (the
  paper's global context), then fused by a 1x1x1 CBR.
* Coarse-to-fine: the fused context is up-sampled to the 1/4 features and refined
  with them (concatenation + 3x3x3 CBR), as in our other baselines; the original
  up-samples its 1/8 logits directly.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..labels import NUM_CLASSES
from .attention import as_tokens, from_tokens
from .blocks import ConvNormAct, ImagePooling, ResidualEncoder, resize_to
from .registry import register_model


class AggregatedCooccurrentFeatures(nn.Module):
    """ACF module: [features, co-occurrent context, global context] -> 1x1x1 CBR.

    Args:
        in_channels: Input channels.
        channels: Channels of the reduced features, the context and the output.
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.reduce = ConvNormAct(in_channels, channels, 3)
        reduced = max(channels // 8, 1)
        self.query = nn.Conv3d(channels, reduced, 1)
        self.key = nn.Conv3d(channels, reduced, 1)
        self.value = nn.Conv3d(channels, channels, 1)
        self.global_context = ImagePooling(in_channels, channels)
        self.fuse = ConvNormAct(3 * channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.reduce(x)
        query = as_tokens(self.query(features))  # (B, N, C/8), N = D*H*W
        key = as_tokens(self.key(features))  # (B, N, C/8)
        probability = torch.softmax(torch.bmm(query, key.transpose(1, 2)), dim=-1)  # (B, N, N) p(j | i)
        context = torch.bmm(probability, as_tokens(self.value(features)))  # (B, N, C)
        context = from_tokens(context, features.shape)  # (B, C, D, H, W)
        return self.fuse(torch.cat([features, context, self.global_context(x)], dim=1))


@register_model("cfnet3d")
class CFNet3D(nn.Module):
    """3D co-occurrent feature network with a coarse-to-fine decoder.

    Args:
        width: Encoder base width w (stages w, w, 2w, 4w, 4w); head and decoder use 2w.
        in_channels: Image channels.
        num_classes: Output classes including background.

    Shapes:
        (B, in_channels, D, H, W) with H, W multiples of 16 -> (B, num_classes, D, H, W).
    """

    def __init__(self, width: int = 32, in_channels: int = 1, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.encoder = ResidualEncoder(in_channels, width)
        low_channels, high_channels = self.encoder.out_channels
        self.acf = AggregatedCooccurrentFeatures(high_channels, 2 * width)
        self.refine = ConvNormAct(2 * width + low_channels, 2 * width, 3)
        self.classifier = nn.Conv3d(2 * width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.encoder(x)  # (B, w, D, H/4, W/4), (B, 4w, D, H/16, W/16)
        coarse = resize_to(self.acf(high), low.shape[2:])
        logits = self.classifier(self.refine(torch.cat([coarse, low], dim=1)))
        return resize_to(logits, x.shape[2:])
