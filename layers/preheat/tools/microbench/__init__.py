"""Benchmarks of one piece at a time (fetch, load, slim, warmer, deploy, the emulator's own
overhead), each behind a thin entry point in scripts/. The cold-start benchmark is `preheat.tools.bench`.
"""
