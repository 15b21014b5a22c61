"""3D residual U-Net: MONAI's ``UNet`` with two residual units per level (Kerfoot et al., 2018).

Five levels with channels (w, 2w, 4w, 8w, 16w), strided-convolution down-sampling by
(1, 2, 2), BatchNorm and PReLU (MONAI's default activation).
"""

from __future__ import annotations

import torch.nn as nn
from monai.networks.nets import UNet

from ..labels import NUM_CLASSES
from .blocks import IN_PLANE_STRIDE
from .registry import register_model


@register_model("resunet3d")
def resunet3d(width: int = 16, in_channels: int = 1, num_classes: int = NUM_CLASSES) -> nn.Module:
    """3D ResUNet mapping (B, in_channels, D, H, W) to (B, num_classes, D, H, W); H, W multiples of 16.

    Args:
        width: Channels of the first level.
        in_channels: Image channels.
        num_classes: Output classes including background.
    """
    return UNet(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=num_classes,
        channels=tuple(width * 2**level for level in range(5)),
        strides=(IN_PLANE_STRIDE,) * 4,
        num_res_units=2,
        norm="batch",
    )
