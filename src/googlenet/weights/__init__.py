"""Weights in and out: the package's safetensors format (store); the BVLC Caffe and torchvision importers."""
