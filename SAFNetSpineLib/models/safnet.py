"""SAFNet: scene aware fusion network for level-by-level spine MRI segmentation.

After "A spine segmentation method based on scene aware fusion network" (BMC
Neuroscience 24:49, 2023). For a 1 x 18 x 256 x 128 input (D = left-right slices,
H = superior-inferior, W = anterior-posterior) and width C = 128:

1. **Feature extractor.** A CBR stem and stride-(1, 2, 2) CBRs bring the volume to
   1/4, 1/8 and 1/16 in-plane resolution; a residual block (3x3x3 CBR branch +
   1x1x1 CBR shortcut) follows each step. Outputs: low C x 18 x 64 x 32,
   mid C x 18 x 32 x 16, high C x 18 x 16 x 8 (:meth:`SAFNet.encode`). Three dilated
   CBRs finish the high level.
2. **ASPP** on the high level: 1x1x1, 3x3x3 at dilations 6, 12 and 18, image pooling.
3. **Scene attention** on the high level: position attention, then channel attention,
   both residual (:mod:`.attention`).
4. **Multiscale fusion (MSF)** of the low and the mid features: four parallel C/4
   3x3x3 CBR branches at dilations (1, 2), (1, 4), (1, 8), (1, 16), concatenated.
5. **Dimension splicing.** Global average pooling and a sigmoid turn the high features
   into a per-channel gate that multiplies the low and the mid features; high, gated
   low and gated mid are resampled to the low level's size and concatenated.
6. **Classifier** on the concatenation, upsampled (trilinear) to the input size.

Choices where the paper leaves room (each one is ours):

* Stem: a stride-(1, 2, 2) CBR to C/4 channels, then a stride-(1, 2, 2) CBR to C/2;
  the residual block of the low level widens to C, and every later layer has C
  channels. No layer produces a full-resolution feature map, so nearly all compute
  runs at 1/4 in-plane resolution and below (133 GFLOP at C = 128).
* The extractor's three dilated CBRs use in-plane dilations 2, 3 and 5 (a hybrid
  dilated sequence that avoids gridding; 16 x 8 in-plane voxels leave no room for
  larger rates) and no through-plane dilation.
* ASPP rates 6, 12, 18 are applied isotropically, as the paper states them for a 3D
  input. On the 18 x 16 x 8 high level most taps of rates 12 and 18 fall in the zero
  padding, as they must in the paper's own configuration.
* MSF dilations "(1, r)" are read as (through-plane, in-plane): dilation (1, r, r).
  The concatenated branches (C channels) are mixed by a 1x1x1 CBR and added to the
  input (residual), so switching MSF off leaves the features unchanged in shape.
* The splicing gate is ``sigmoid(GAP(high))`` with no learned layer, exactly the
  operations the paper names; all three levels are resampled to the low level's
  size (the largest), giving 3C channels.
* The concatenation is followed by a 1x1x1 CBR 3C -> C, computed without building
  the 3C tensor (:class:`DimensionSplicing`). Classifier: 3x3x3 CBR C -> C, 1x1x1
  conv C -> classes; the logits are upsampled by (1, 4, 4) to the input grid.
* Attention gamma starts at 0.1 instead of DANet's 0 (see :mod:`.attention`).
* Optional, not the paper's: ``refine`` adds a half-resolution :class:`RefineHead` (the stem's
  features correct the logits before the last upsampling), off by default.
* Input sizes: H and W must be multiples of 16; any D >= 1 works.

Ablation (paper: base, +ASPP, +MSF, +SA, full): ``use_aspp``, ``use_msf`` and
``use_attention`` remove the corresponding module and its parameters; "base" is the
extractor + splicing + classifier.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..labels import NUM_CLASSES
from .attention import ChannelAttention, PositionAttention
from .blocks import ASPP, IN_PLANE_STRIDE, ConvNormAct, ResidualBlock, resize_to
from .registry import register_model


class FeatureExtractor(nn.Module):
    """CBR stem + residual stages producing low (1/4), mid (1/8) and high (1/16) features."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.stem = ConvNormAct(in_channels, max(width // 4, 1), 3, stride=IN_PLANE_STRIDE)
        self.to_low = ConvNormAct(max(width // 4, 1), max(width // 2, 1), 3, stride=IN_PLANE_STRIDE)
        self.low = ResidualBlock(max(width // 2, 1), width)
        self.to_mid = ConvNormAct(width, width, 3, stride=IN_PLANE_STRIDE)
        self.mid = ResidualBlock(width, width)
        self.to_high = ConvNormAct(width, width, 3, stride=IN_PLANE_STRIDE)
        self.high = nn.Sequential(
            ResidualBlock(width, width),
            *(ConvNormAct(width, width, 3, dilation=(1, r, r)) for r in (2, 3, 5)),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.levels(x)[1:]

    def levels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(stem at 1/2 in-plane resolution, low, mid, high)."""
        stem = self.stem(x)
        low = self.low(self.to_low(stem))
        mid = self.mid(self.to_mid(low))
        high = self.high(self.to_high(mid))
        return stem, low, mid, high


class RefineHead(nn.Module):
    """A half-resolution correction of the logits from the stem's features.

    The classifier works at 1/4 in-plane resolution, where one logit spans 4 x 4 input
    voxels (3.5-6 mm), too coarse to tilt an endplate by a few degrees. This head
    upsamples the logits to the stem's 1/2 resolution, concatenates the stem features,
    and computes a correction (a 3x3x3 CBR and a 1x1x1 convolution) that is upsampled and
    added to the upsampled logits. The last convolution starts at zero, so a network given
    this head starts as exactly the one without it.

    Args:
        num_classes: Logit channels.
        stem_channels: Channels of the stem's output (C/4).
        channels: Channels of the correction's CBR.
    """

    def __init__(self, num_classes: int, stem_channels: int, channels: int) -> None:
        super().__init__()
        self.block = ConvNormAct(num_classes + stem_channels, channels, 3)
        self.out = nn.Conv3d(channels, num_classes, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, logits: torch.Tensor, stem: torch.Tensor) -> torch.Tensor:
        """(B, K, D, H/4, W/4) logits and (B, C/4, D, H/2, W/2) stem -> (B, K, D, H/2, W/2) correction."""
        return self.out(self.block(torch.cat([resize_to(logits, stem.shape[2:]), stem], dim=1)))


class MultiscaleFusion(nn.Module):
    """Four C/4 dilated 3x3x3 CBR branches, concatenated, mixed by a 1x1x1 CBR, plus input.

    Args:
        channels: C, divisible by 4.
        dilations: In-plane dilation of each branch; through-plane dilation is 1.
    """

    def __init__(self, channels: int, dilations: tuple[int, ...] = (2, 4, 8, 16)) -> None:
        super().__init__()
        if channels % len(dilations):
            raise ValueError(f"MSF needs channels divisible by {len(dilations)}, got {channels}")
        branch_channels = channels // len(dilations)
        self.branches = nn.ModuleList(
            ConvNormAct(channels, branch_channels, 3, dilation=(1, r, r)) for r in dilations
        )
        self.mix = ConvNormAct(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(torch.cat([branch(x) for branch in self.branches], dim=1))


class DimensionSplicing(nn.Module):
    """Gate low and mid by ``sigmoid(GAP(high))``, resample all to the low size, concatenate, 1x1x1 CBR.

    The 1x1x1 convolution over the concatenation [high, gated low, gated mid] (3C
    channels) is computed as the sum of three C -> out projections, one per level,
    each applied before resampling. Resampling is linear and acts per channel, so this
    is the same function as concatenating first, without materialising the 3C tensor.

    Args:
        channels: C of each level.
        out_channels: Output channels.
    """

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.project = nn.ModuleDict(
            {level: nn.Conv3d(channels, out_channels, 1, bias=False) for level in ("high", "low", "mid")}
        )
        self.norm = nn.BatchNorm3d(out_channels)

    def forward(self, low: torch.Tensor, mid: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(high.mean(dim=(2, 3, 4), keepdim=True))  # (B, C, 1, 1, 1)
        size = low.shape[2:]
        mixed = (
            resize_to(self.project["high"](high), size)
            + self.project["low"](low * gate)
            + resize_to(self.project["mid"](mid * gate), size)
        )
        return torch.relu_(self.norm(mixed))  # (B, out_channels, D, H/4, W/4)


@register_model("safnet")
class SAFNet(nn.Module):
    """Scene aware fusion network (see the module docstring for the architecture), registered as "safnet".

    Args:
        width: Channels C of every feature level (paper: 128); divisible by 8.
        in_channels: Image channels (1 for a single MRI sequence).
        num_classes: Output classes including background.
        use_aspp: Apply ASPP to the high features.
        use_attention: Apply position then channel attention to the high features.
        use_msf: Apply multiscale fusion to the low and mid features.
        refine: Channels of a half-resolution :class:`RefineHead` after the classifier (0: none,
            the paper's network; ours, not the paper's).

    Shapes:
        input (B, in_channels, D, H, W) with H, W multiples of 16;
        output logits (B, num_classes, D, H, W).
    """

    def __init__(
        self,
        width: int = 128,
        in_channels: int = 1,
        num_classes: int = NUM_CLASSES,
        use_aspp: bool = True,
        use_attention: bool = True,
        use_msf: bool = True,
        refine: int = 0,
    ) -> None:
        super().__init__()
        if width < 8 or width % 8:
            raise ValueError(f"SAFNet width must be a positive multiple of 8, got {width}")
        self.width = width
        self.extractor = FeatureExtractor(in_channels, width)
        self.aspp = ASPP(width, width, rates=(6, 12, 18)) if use_aspp else None
        self.position_attention = PositionAttention(width) if use_attention else None
        self.channel_attention = ChannelAttention() if use_attention else None
        self.msf_low = MultiscaleFusion(width) if use_msf else None
        self.msf_mid = MultiscaleFusion(width) if use_msf else None
        self.splice = DimensionSplicing(width, width)
        self.classifier = nn.Sequential(ConvNormAct(width, width, 3), nn.Conv3d(width, num_classes, 1))
        self.refine = RefineHead(num_classes, max(width // 4, 1), int(refine)) if refine else None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Feature extractor outputs.

        Args:
            x: (B, in_channels, D, H, W).

        Returns:
            low (B, C, D, H/4, W/4), mid (B, C, D, H/8, W/8), high (B, C, D, H/16, W/16).
        """
        return self.extractor(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 16 or x.shape[-2] % 16:
            raise ValueError(f"SAFNet needs H and W divisible by 16, got input shape {tuple(x.shape)}")
        stem, low, mid, high = self.extractor.levels(x)
        if self.aspp is not None:
            high = self.aspp(high)
        if self.position_attention is not None and self.channel_attention is not None:
            high = self.channel_attention(self.position_attention(high))
        if self.msf_low is not None and self.msf_mid is not None:
            low, mid = self.msf_low(low), self.msf_mid(mid)
        logits = self.classifier(self.splice(low, mid, high))
        out = resize_to(logits, x.shape[2:])  # (B, classes, D, H, W)
        if self.refine is not None:
            out = out + resize_to(self.refine(logits, stem), x.shape[2:])
        return out
