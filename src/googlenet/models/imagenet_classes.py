"""The 1000 ILSVRC2012 class names in the standard order (class index = position).

Paper section 7: the classification challenge has 1000 leaf-node categories of ImageNet. The
list is the one torchvision ships with its ImageNet weights (the same order as Caffe's
``synset_words.txt`` and the ILSVRC2012 devkit's sorted WordNet ids); it is read from torchvision
at run time rather than copied here, so there is one source of truth.
"""

from __future__ import annotations

from functools import cache

NUM_IMAGENET_CLASSES = 1000  # ILSVRC 2012-2014 classification task


@cache
def _names() -> tuple[str, ...]:
    from torchvision.models import GoogLeNet_Weights

    names = tuple(GoogLeNet_Weights.IMAGENET1K_V1.meta["categories"])
    if len(names) != NUM_IMAGENET_CLASSES:  # guards against a torchvision that changed the list
        raise RuntimeError(f"torchvision lists {len(names)} ImageNet categories, expected 1000")
    return names


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names, index ``i`` naming logit ``i`` (a fresh list)."""
    return list(_names())
