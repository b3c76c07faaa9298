"""Readers (``open_source``), the H5MD writer and safe output files."""

from .sources import Block, Source, SourceSpec, open_source

__all__ = ["Block", "Source", "SourceSpec", "open_source"]
