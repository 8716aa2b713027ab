"""ExportNamespace and ImportNamespace: the flows between the storage ports and an
archive (core/archive.py has the format)."""
