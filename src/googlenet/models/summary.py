"""The paper's Table 1, regenerated from a live model with forward hooks.

Nothing here copies the table: output sizes come from running a dummy image through the model,
parameters from the modules, multiply-adds from the shapes each Conv2d / Linear actually saw.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .layers import AuxHead, ConvAct, Inception
from .model import GoogLeNet


@dataclass
class SummaryRow:
    name: str
    type: str
    kernel: str | None  # "patch size/stride", as Table 1 writes it
    output_shape: list[int]  # [C, H, W] (or [C] for the classifiers)
    depth: int  # layers with parameters on the longest path, as Table 1 counts them
    filters: dict[str, int] = field(default_factory=dict)  # the six Inception columns
    params: int = 0
    macs: int = 0
    training_only: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _kernel_of(module: nn.Module, in_shape: torch.Size) -> str | None:
    if isinstance(module, ConvAct):
        k, s = module.conv.kernel_size[0], module.conv.stride[0]
        return f"{k}x{k}/{s}"
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
        k, s = module.kernel_size, module.stride
        k = k if isinstance(k, int) else k[0]
        s = s if isinstance(s, int) else s[0]
        return f"{k}x{k}/{s}"
    if isinstance(module, nn.AdaptiveAvgPool2d):  # pool5: a global pool, 7x7/1 at 224
        return f"{in_shape[-2]}x{in_shape[-1]}/1"
    return None


def _type_of(model: GoogLeNet, name: str, module: nn.Module) -> tuple[str, int]:
    """Table 1's "type" column and the row's depth."""
    if isinstance(module, ConvAct):
        return "convolution", 1
    if isinstance(module, nn.MaxPool2d):
        return "max pool", 0
    if isinstance(module, nn.AdaptiveAvgPool2d | nn.AvgPool2d):
        return "avg pool", 0
    if isinstance(module, nn.LocalResponseNorm):
        return "local response norm", 0
    if isinstance(module, Inception):
        return "inception", 2
    if isinstance(module, nn.Dropout):
        return f"dropout ({round(module.p * 100)}%)", 0
    if isinstance(module, AuxHead):
        return "auxiliary classifier", 3
    if isinstance(module, nn.Linear):
        return "linear", 1
    raise TypeError(f"no Table 1 type for {name}: {type(module).__name__}")


def _macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        return output[0].numel() * per_output
    if isinstance(module, nn.Linear):
        return output[0].numel() * module.in_features
    return 0


@torch.no_grad()
def summarize(model: GoogLeNet, image_size: int = 224) -> list[SummaryRow]:
    """One row per stem layer, pool, LRN, Inception module, head layer and auxiliary head.

    Shapes and multiply-adds are per image at ``image_size`` x ``image_size`` input.
    """
    rows_modules: list[tuple[str, nn.Module]] = [(n, model.get_submodule(n)) for n in model.stages]
    rows_modules += [("avgpool", model.avgpool), ("dropout", model.dropout), ("fc", model.fc)]
    rows_modules += [(n, h) for n, h in (("aux1", model.aux1), ("aux2", model.aux2)) if h is not None]

    records: dict[str, dict] = {}
    macs: dict[str, int] = {name: 0 for name, _ in rows_modules}
    handles = []

    def row_hook(name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            records[name] = {"in_shape": inputs[0].shape, "out_shape": output.shape}

        return hook

    def leaf_hook(row: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            macs[row] += _macs(module, inputs, output)

        return hook

    for name, module in rows_modules:
        handles.append(module.register_forward_hook(row_hook(name)))
        for leaf in module.modules():
            if isinstance(leaf, nn.Conv2d | nn.Linear):
                handles.append(leaf.register_forward_hook(leaf_hook(name)))
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        x = torch.zeros(1, 3, image_size, image_size, dtype=param.dtype, device=param.device)
        model.forward_train(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    rows: list[SummaryRow] = []
    for name, module in rows_modules:
        rec = records[name]
        type_, depth = _type_of(model, name, module)
        filters = {}
        if isinstance(module, Inception):
            r = module.row
            filters = {
                "1x1": r.ch1x1,
                "3x3_reduce": r.ch3x3_reduce,
                "3x3": r.ch3x3,
                "5x5_reduce": r.ch5x5_reduce,
                "5x5": r.ch5x5,
                "pool_proj": r.pool_proj,
            }
        rows.append(
            SummaryRow(
                name=name,
                type=type_,
                kernel=_kernel_of(module, rec["in_shape"]),
                output_shape=list(rec["out_shape"][1:]),
                depth=depth,
                filters=filters,
                params=sum(p.numel() for p in module.parameters()),
                macs=macs[name],
                training_only=isinstance(module, AuxHead),
            )
        )
    return rows


def totals(rows: list[SummaryRow]) -> dict[str, int]:
    """Inference totals (auxiliary heads excluded) and the same with the heads included."""
    inference = [r for r in rows if not r.training_only]
    return {
        "params": sum(r.params for r in inference),
        "macs": sum(r.macs for r in inference),
        "depth": sum(r.depth for r in inference),
        "params_with_aux": sum(r.params for r in rows),
        "macs_with_aux": sum(r.macs for r in rows),
    }


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}" if unit == "G" else f"{n / scale:.1f}{unit}"
    return str(n)


FILTER_KEYS = ("1x1", "3x3_reduce", "3x3", "5x5_reduce", "5x5", "pool_proj")
HEADER = ["layer", "patch/stride", "output size", "depth", "#1x1", "#3x3 red", "#3x3", "#5x5 red", "#5x5",
          "pool proj", "params", "ops (MACs)"]  # fmt: skip


def _cells(r: SummaryRow) -> list[str]:
    shape = "x".join(str(v) for v in (r.output_shape[1:] + r.output_shape[:1]))  # H x W x C, as Table 1
    label = f"{r.name} ({r.type})" + (" [train]" if r.training_only else "")
    filters = [str(r.filters[k]) if r.filters else "" for k in FILTER_KEYS]
    counts = [_human(r.params) if r.params else "", _human(r.macs) if r.macs else ""]
    return [label, r.kernel or "", shape, str(r.depth) if r.depth else "", *filters, *counts]


def format_table(rows: list[SummaryRow], title: str = "") -> str:
    """Table 1 as fixed-width text: the layer name left-aligned, every other column right-aligned."""
    t = totals(rows)
    body = [_cells(r) for r in rows]
    blank = [""] * len(FILTER_KEYS)
    body.append(["total (inference)", "", "", str(t["depth"]), *blank, f"{t['params']:,}", _human(t["macs"])])
    if t["params_with_aux"] != t["params"]:
        with_aux = [f"{t['params_with_aux']:,}", _human(t["macs_with_aux"])]
        body.append(["total with aux heads", "", "", "", *blank, *with_aux])
    widths = [max(len(row[i]) for row in [HEADER, *body]) for i in range(len(HEADER))]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)

    lines = [title] if title else []
    lines += [line(HEADER), "  ".join("-" * w for w in widths), *(line(row) for row in body)]
    return "\n".join(lines)
