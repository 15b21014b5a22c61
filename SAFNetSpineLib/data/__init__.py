"""Data sources: case folders on disk and the synthetic phantom generator."""
