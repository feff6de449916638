"""Operator tools: what runs on a laptop or in CI, never inside Lambda."""
