"""The tiered model cache: memory → read-only local path → disk (/tmp) → S3."""
