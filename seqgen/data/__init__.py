"""Readers, tokenised caches and batching for each kind of data."""
