"""3D U-Net (Cicek et al., MICCAI 2016) from MONAI's U-Net blocks, with in-plane strides.

Each resolution level has two 3x3x3 conv + BatchNorm + ReLU layers; the decoder
up-samples with transposed convolutions and concatenates the skip connection. Three
down-sampling steps of (1, 2, 2) keep the thin left-right axis (D = 18) intact.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.blocks import UnetBasicBlock, UnetOutBlock, UnetUpBlock

from ..labels import NUM_CLASSES
from .blocks import IN_PLANE_STRIDE
from .registry import register_model

_NORM = ("batch", {"affine": True})
_ACT = ("relu", {"inplace": True})


@register_model("unet3d")
class UNet3D(nn.Module):
    """Four-level 3D U-Net with channels (w, 2w, 4w, 8w).

    Args:
        width: Channels of the first level.
        in_channels: Image channels.
        num_classes: Output classes including background.

    Shapes:
        (B, in_channels, D, H, W) with H, W multiples of 8 -> (B, num_classes, D, H, W).
    """

    def __init__(self, width: int = 32, in_channels: int = 1, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        channels = [width * 2**level for level in range(4)]
        self.down = nn.ModuleList()
        for level, out_ch in enumerate(channels):
            in_ch = in_channels if level == 0 else channels[level - 1]
            stride = 1 if level == 0 else IN_PLANE_STRIDE
            self.down.append(UnetBasicBlock(3, in_ch, out_ch, 3, stride, norm_name=_NORM, act_name=_ACT))
        self.up = nn.ModuleList(
            UnetUpBlock(
                3, channels[level], channels[level - 1], 3, IN_PLANE_STRIDE, IN_PLANE_STRIDE,
                norm_name=_NORM, act_name=_ACT,
            )
            for level in range(len(channels) - 1, 0, -1)
        )
        self.head = UnetOutBlock(3, channels[0], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            x = block(x, skips.pop())
        return self.head(x)
