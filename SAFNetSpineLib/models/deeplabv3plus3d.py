"""3D DeepLabv3+ (Chen et al., ECCV 2018) with a residual encoder and in-plane strides.

Encoder: :class:`.blocks.ResidualEncoder` (output stride 16 in-plane, last stage
dilated). ASPP (1x1x1, 3x3x3 at dilations 6, 12, 18, image pooling) on the 1/16
features, exactly the module SAFNet uses, so the two differ only in what surrounds it.
Decoder: the ASPP output is up-sampled to the 1/4 features, concatenated with a
1x1x1-reduced copy of them, refined by two 3x3x3 CBRs and classified; logits are
up-sampled to the input size.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..labels import NUM_CLASSES
from .blocks import ASPP, ConvNormAct, ResidualEncoder, resize_to
from .registry import register_model


@register_model("deeplabv3plus3d")
class DeepLabV3Plus3D(nn.Module):
    """3D DeepLabv3+.

    Args:
        width: Encoder base width w (stages w, w, 2w, 4w, 4w); ASPP and decoder use 2w.
        in_channels: Image channels.
        num_classes: Output classes including background.

    Shapes:
        (B, in_channels, D, H, W) with H, W multiples of 16 -> (B, num_classes, D, H, W).
    """

    def __init__(self, width: int = 32, in_channels: int = 1, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.encoder = ResidualEncoder(in_channels, width)
        low_channels, high_channels = self.encoder.out_channels
        self.aspp = ASPP(high_channels, 2 * width, rates=(6, 12, 18))
        # DeepLabv3+ shrinks the low-level features (48 of 256 channels) so that they do
        # not outweigh the ASPP context in the concatenation.
        reduced = max(width // 2, 8)
        self.reduce_low = ConvNormAct(low_channels, reduced, 1)
        self.decoder = nn.Sequential(
            ConvNormAct(2 * width + reduced, 2 * width, 3),
            ConvNormAct(2 * width, 2 * width, 3),
            nn.Conv3d(2 * width, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.encoder(x)  # (B, w, D, H/4, W/4), (B, 4w, D, H/16, W/16)
        context = resize_to(self.aspp(high), low.shape[2:])
        logits = self.decoder(torch.cat([context, self.reduce_low(low)], dim=1))
        return resize_to(logits, x.shape[2:])
