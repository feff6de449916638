"""Imports something, then fails INIT: the imports before the failure are still profiled."""

import email.mime.text  # noqa: F401

raise RuntimeError("config file missing: refusing to start")
