"""Strata: a gRPC data-access server for records, jobs, transcripts and artifacts."""

__version__ = "0.1.0"
