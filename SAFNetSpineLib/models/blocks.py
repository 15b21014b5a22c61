"""Building blocks shared by the 3D segmentation networks.

All blocks take and return tensors shaped (B, C, D, H, W). In this project D is the
thin left-right axis (18 sagittal slices at the network grid), H superior-inferior and
W anterior-posterior, so down-sampling is in-plane only: stride (1, 2, 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

Triple = int | Sequence[int]

#: The in-plane-only stride used for every down-sampling step.
IN_PLANE_STRIDE = (1, 2, 2)


def as_triple(value: Triple) -> tuple[int, int, int]:
    """``3 -> (3, 3, 3)``; a sequence of three ints is returned as a tuple."""
    if isinstance(value, int):
        return (value, value, value)
    result = tuple(int(v) for v in value)
    if len(result) != 3:
        raise ValueError(f"expected an int or three ints, got {value!r}")
    return result  # type: ignore[return-value]


class ConvNormAct(nn.Sequential):
    """CBR: Conv3d (no bias) + BatchNorm3d + ReLU, "same" padding for odd kernels.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Kernel size per axis (D, H, W).
        stride: Stride per axis; the output size is ceil(input / stride).
        dilation: Dilation per axis.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Triple = 3,
        stride: Triple = 1,
        dilation: Triple = 1,
    ) -> None:
        kernel, dil = as_triple(kernel_size), as_triple(dilation)
        padding = tuple(d * (k // 2) for k, d in zip(kernel, dil, strict=True))
        super().__init__(
            nn.Conv3d(
                in_channels, out_channels, kernel, stride=as_triple(stride), padding=padding,
                dilation=dil, bias=False,
            ),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """Residual block: a 3x3x3 CBR branch plus a 1x1x1 CBR shortcut, summed.

    The shortcut is always a projection (CBR), as in the SAFNet paper, so the block
    may change the channel count and stride.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: Triple = 1, dilation: Triple = 1) -> None:
        super().__init__()
        self.branch = ConvNormAct(in_channels, out_channels, 3, stride=stride, dilation=dilation)
        self.shortcut = ConvNormAct(in_channels, out_channels, 1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x) + self.shortcut(x)


class ImagePooling(nn.Module):
    """ASPP image-pooling branch: global average pool, 1x1x1 conv + ReLU, broadcast back.

    No BatchNorm here: a (B, C, 1, 1, 1) tensor with B = 1 has one value per channel,
    which training-mode BatchNorm rejects.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.relu(self.conv(x.mean(dim=(2, 3, 4), keepdim=True)))  # (B, C_out, 1, 1, 1)
        return pooled.expand(-1, -1, *x.shape[2:])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with five branches (DeepLabv3).

    Branches: 1x1x1 CBR; three 3x3x3 CBRs with dilations ``rates``; image pooling.
    The five outputs are concatenated and projected back by a 1x1x1 CBR.

    Args:
        in_channels: Input channels.
        out_channels: Channels of every branch and of the output.
        rates: Dilations of the three 3x3x3 branches; each is an int (isotropic) or
            a (D, H, W) triple.
    """

    def __init__(
        self, in_channels: int, out_channels: int, rates: Sequence[Triple] = (6, 12, 18)
    ) -> None:
        super().__init__()
        branches: list[nn.Module] = [ConvNormAct(in_channels, out_channels, 1)]
        branches += [ConvNormAct(in_channels, out_channels, 3, dilation=r) for r in rates]
        branches.append(ImagePooling(in_channels, out_channels))
        self.branches = nn.ModuleList(branches)
        self.project = ConvNormAct(len(branches) * out_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class ResidualEncoder(nn.Module):
    """ResNet-like 3D encoder: CBR stem, then four residual stages with in-plane stride.

    Widths (w, w, 2w, 4w, 4w); the last stage is dilated instead of strided, so the
    output stride is 16 in-plane and 1 through-plane (DeepLab's "output stride 16").

    Returns from ``forward``: (1/4 features with w channels, 1/16 features with 4w channels).
    """

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.stem = ConvNormAct(in_channels, width, 3, stride=IN_PLANE_STRIDE)  # 1/2
        self.stage1 = ResidualBlock(width, width, stride=IN_PLANE_STRIDE)  # 1/4
        self.stage2 = ResidualBlock(width, 2 * width, stride=IN_PLANE_STRIDE)  # 1/8
        self.stage3 = ResidualBlock(2 * width, 4 * width, stride=IN_PLANE_STRIDE)  # 1/16
        self.stage4 = ResidualBlock(4 * width, 4 * width, dilation=(1, 2, 2))  # 1/16, dilated
        self.out_channels = (width, 4 * width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        quarter = self.stage1(self.stem(x))
        return quarter, self.stage4(self.stage3(self.stage2(quarter)))


def resize_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Trilinear resampling of (B, C, D, H, W) to spatial ``size``; a no-op if equal.

    When D is unchanged and ``x`` is channels_last_3d, the same result is computed as a
    bilinear in-plane resampling of the (B*D, C, H, W) view, which is several times
    faster on CPU (trilinear with a D scale of 1 reduces to bilinear exactly).
    """
    size = tuple(int(s) for s in size)
    if tuple(x.shape[2:]) == size:
        return x
    b, c, d = x.shape[:3]
    if size[0] == d and x.is_contiguous(memory_format=torch.channels_last_3d):
        planes = x.permute(0, 2, 1, 3, 4).reshape(b * d, c, *x.shape[3:])  # (B*D, C, H, W), NHWC strides
        planes = F.interpolate(planes, size=size[1:], mode="bilinear", align_corners=False)
        return planes.reshape(b, d, c, *size[1:]).permute(0, 2, 1, 3, 4)  # (B, C, D, H', W')
    return F.interpolate(x, size=size, mode="trilinear", align_corners=False)

def fold_batch_norms(model: nn.Module) -> nn.Module:
    """Fold each CBR's BatchNorm into its convolution, in place, for inference.

    Only eval-mode models: the running statistics become a per-channel scale and bias
    of the convolution, and the BatchNorm is replaced by ``nn.Identity``. Outputs are
    unchanged up to rounding; the saved state-dict layout is not, so fold after loading
    weights, never before saving them.

    Returns:
        The same model object.
    """
    if model.training:
        raise ValueError("fold_batch_norms needs a model in eval mode")
    for module in model.modules():
        if isinstance(module, ConvNormAct) and isinstance(module[1], nn.BatchNorm3d):
            module[0] = torch.nn.utils.fusion.fuse_conv_bn_eval(module[0], module[1])
            module[1] = nn.Identity()
    return model


class OneDNNConv3d(nn.Conv3d):
    """Conv3d that always uses oneDNN for fp32 inference on CPU.

    PyTorch sends a batch-1, 3x3x3 convolution whose N*C*D*H is below 20480 to its
    reference kernels (``slow_conv3d``, ``slow_conv_dilated3d``), 2-10x slower than
    oneDNN; that hits most layers of SAFNet at widths <= 64 on a single volume. Gradient
    mode, autocast and other devices keep the standard path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type == "cpu"
            and x.dtype == torch.float32 == self.weight.dtype
            and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu")
            and self.padding_mode == "zeros"
            and isinstance(self.padding, tuple)
        ):
            return torch.ops.aten.mkldnn_convolution(
                x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
            )
        return super().forward(x)


def use_onednn_convolutions(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Conv3d`` of ``model`` by an equivalent :class:`OneDNNConv3d`, in place.

    Returns:
        The same model object.
    """
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Conv3d and torch.backends.mkldnn.is_available():
                replacement = OneDNNConv3d(
                    child.in_channels, child.out_channels, child.kernel_size, stride=child.stride,
                    padding=child.padding, dilation=child.dilation, groups=child.groups,
                    bias=child.bias is not None, padding_mode=child.padding_mode,
                    device=child.weight.device, dtype=child.weight.dtype,
                )
                replacement.load_state_dict(child.state_dict())
                replacement.train(child.training)
                setattr(parent, name, replacement)
    return model
