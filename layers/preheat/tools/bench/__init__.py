"""The cold-start benchmark: every strategy cold-started in fresh local Lambda environments.

`run(...)` (in runner.py) measures; summary.py turns samples into medians, ratios and the
table; chart.py draws them. Light to import: TensorFlow and matplotlib load only when used.
"""
