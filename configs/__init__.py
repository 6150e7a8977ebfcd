"""Shipped configuration presets (YAML), importable as ``fadtq_configs``."""
