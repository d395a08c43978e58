"""Bulk OHLCV CSV ingestion: the library behind the presign, process-file and status functions."""
