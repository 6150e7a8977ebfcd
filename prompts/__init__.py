"""Shipped Jinja prompt templates, importable as ``fadtq_prompts``."""
