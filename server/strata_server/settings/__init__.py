"""The groups of settings `strata_server.config.Settings` is made of, one module per
concern (backends, cache, serving, limits, background work, security), each field
beside its default, bounds and description.

They are plain pydantic models that read nothing: `strata_server.config` stays the
one place that reads configuration (flags, STRATA_* environment, the TOML file),
and every other module takes its settings from there.
"""
