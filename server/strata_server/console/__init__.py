"""The Strata Console: a web interface for operators, served over HTTP.

It is a client of the public gRPC API (through the Python client), never of the
database: `gateway` is its only way to data, `web` its routes, `serving` runs it
inside `strata serve` or alone (`strata console`). See docs/console.md.
"""
