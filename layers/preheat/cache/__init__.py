"""The tiered model cache: memory → read-only local path → disk (/tmp) → S3."""

from preheat.cache import memory
from preheat.cache.resolve import Resolved, resolve

__all__ = ["Resolved", "memory", "resolve"]
