"""The in-process adapters of the embedded shape: the events registry, the cache and
the rate limiter live in the server process, with nothing to run beside it."""
