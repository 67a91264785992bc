"""CIFAR-style residual networks: ResNet-18/34/50, PreAct-ResNet-18, ResNeXt-29, Wide ResNets,
with optional squeeze-and-excitation or CBAM attention and stochastic depth.

CIFAR variants use a 3x3 stem without max-pooling, so 32x32 inputs keep their resolution
through the first stage.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register


def he_init(model: nn.Module) -> None:
    """He (fan-out) initialisation of every convolution; batch norms start as the identity."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch of a whole sample with probability ``p``."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
        return x * mask / keep


class SE(nn.Module):
    """Squeeze-and-excitation (Hu et al., 2018)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(8, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x):
        w = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(w))))


class CBAM(nn.Module):
    """Convolutional block attention (Woo et al., 2018): channel then spatial attention."""

    def __init__(self, channels: int, reduction: int = 16, kernel: int = 7):
        super().__init__()
        hidden = max(8, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x):
        c = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        x = x * torch.sigmoid(c)
        s = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.spatial(s))


def _attention(kind: str | None, channels: int) -> nn.Module:
    if kind is None:
        return nn.Identity()
    return {"se": SE, "cbam": CBAM}[kind](channels)


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, cout, stride=1, attention=None, drop_path=0.0, groups=1, base_width=64):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.att = _attention(attention, cout)
        self.drop = DropPath(drop_path)
        self.short = _shortcut(cin, cout, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.att(self.bn2(self.conv2(out)))
        return F.relu(self.short(x) + self.drop(out), inplace=True)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1, attention=None, drop_path=0.0, groups=1, base_width=64):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.att = _attention(attention, cout)
        self.drop = DropPath(drop_path)
        self.short = _shortcut(cin, cout, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.att(self.bn3(self.conv3(out)))
        return F.relu(self.short(x) + self.drop(out), inplace=True)


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, cout, stride=1, attention=None, drop_path=0.0, groups=1, base_width=64):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.att = _attention(attention, cout)
        self.drop = DropPath(drop_path)
        self.short = None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        short = self.short(out) if self.short is not None else x
        out = self.conv1(out)
        out = self.att(self.conv2(F.relu(self.bn2(out))))
        return short + self.drop(out)


class ResNet(nn.Module):
    """CIFAR ResNet: 3x3 stem, stages of ``widths`` with strides 1, 2, 2, 2 (or 1, 2, 2)."""

    def __init__(self, block, layers, num_classes=100, widths=(64, 128, 256, 512), attention=None,
                 drop_path_rate=0.0, groups=1, base_width=64, in_channels=3, preact=False, stem_out=64):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, stem_out, 3, 1, 1, bias=False)
        self.stem_bn = nn.Identity() if preact else nn.BatchNorm2d(stem_out)
        total = sum(layers)
        rates = torch.linspace(0, drop_path_rate, total).tolist() if total else []
        blocks, cin, k = [], stem_out, 0
        for i, (n, w) in enumerate(zip(layers, widths)):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(cin, w, stride, attention, rates[k], groups, base_width))
                cin = w * block.expansion
                k += 1
        self.blocks = nn.Sequential(*blocks)
        self.final_bn = nn.BatchNorm2d(cin) if preact else nn.Identity()
        self.preact = preact
        self.fc = nn.Linear(cin, num_classes)
        he_init(self)

    def forward(self, x):
        x = self.stem(x)
        if not self.preact:
            x = F.relu(self.stem_bn(x), inplace=True)
        x = self.blocks(x)
        if self.preact:
            x = F.relu(self.final_bn(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class WideBlock(nn.Module):
    def __init__(self, cin, cout, stride, dropout=0.0, drop_path=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop = DropPath(drop_path)
        self.short = None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        short = self.short(out) if self.short is not None else x
        out = self.conv2(self.dropout(F.relu(self.bn2(self.conv1(out)))))
        return short + self.drop(out)


class WideResNet(nn.Module):
    """WRN-depth-k (Zagoruyko & Komodakis, 2016)."""

    def __init__(self, depth=28, width=10, num_classes=100, dropout=0.0, drop_path_rate=0.0, in_channels=3):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError("WRN depth must be 6n + 4")
        n = (depth - 4) // 6
        widths = [16, 16 * width, 32 * width, 64 * width]
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        rates = torch.linspace(0, drop_path_rate, 3 * n).tolist()
        blocks, cin, k = [], widths[0], 0
        for i, w in enumerate(widths[1:]):
            for j in range(n):
                blocks.append(WideBlock(cin, w, 2 if (i > 0 and j == 0) else 1, dropout, rates[k]))
                cin, k = w, k + 1
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)
        he_init(self)  # its batch norms' own defaults are the identity too

    def forward(self, x):
        x = F.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# -- registered variants ------------------------------------------------------------------------
def _resnet(block, layers, **kw):
    return lambda num_classes, in_channels=3, drop_path_rate=0.0: ResNet(
        block, layers, num_classes=num_classes, in_channels=in_channels, drop_path_rate=drop_path_rate, **kw)


for _att in (None, "se", "cbam"):
    _prefix = f"{_att}_" if _att else ""
    register(f"{_prefix}resnet18")(_resnet(BasicBlock, [2, 2, 2, 2], attention=_att))
    register(f"{_prefix}resnet34")(_resnet(BasicBlock, [3, 4, 6, 3], attention=_att))
    register(f"{_prefix}resnet50")(_resnet(Bottleneck, [3, 4, 6, 3], attention=_att))
register("preact_resnet18")(_resnet(PreActBlock, [2, 2, 2, 2], preact=True))
# the CIFAR ResNet of He et al. (2016) with n = 5 (6n + 2 = 32 layers, 0.47 M parameters): the
# backbone of the class-incremental literature (iCaRL, LwF, WA on CIFAR-100)
register("resnet32")(_resnet(BasicBlock, [5, 5, 5], widths=(16, 32, 64), stem_out=16))
register("resnext29_8x64d")(_resnet(Bottleneck, [3, 3, 3], widths=(64, 128, 256), groups=8, base_width=64))
register("resnext29_4x32d")(_resnet(Bottleneck, [3, 3, 3], widths=(64, 128, 256), groups=4, base_width=32))


@register("wrn16_8")
def _wrn16_8(num_classes, in_channels=3, drop_path_rate=0.0):
    return WideResNet(16, 8, num_classes, in_channels=in_channels, drop_path_rate=drop_path_rate)


@register("wrn28_10")
def _wrn28_10(num_classes, in_channels=3, drop_path_rate=0.0):
    return WideResNet(28, 10, num_classes, in_channels=in_channels, drop_path_rate=drop_path_rate)
