"""Losses and training loops: flow matching, CNFs, OT-Flow, MFGs, neural ODEs, mean-field nets."""

from ._train import FitResult as FitResult, fit as fit
