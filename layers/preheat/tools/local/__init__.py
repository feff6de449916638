"""Local stand-ins for AWS services, for the demo, the benchmark and the tests."""

from preheat.tools.local.s3 import S3Server

__all__ = ["S3Server"]
