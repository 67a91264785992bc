"""The class-incremental methods by name, and which of them keep a memory or distil.

A module of names only, so that the trainer's options (:mod:`fastvis.train.config`) can offer
and describe the methods without importing the methods themselves.
"""
from __future__ import annotations

__all__ = ["DISTIL_METHODS", "MEMORY_METHODS", "METHODS"]

METHODS = ("finetune", "joint", "replay", "icarl", "lwf", "wa", "bic")
MEMORY_METHODS = ("replay", "icarl", "wa", "bic")
DISTIL_METHODS = ("icarl", "lwf", "wa", "bic")
