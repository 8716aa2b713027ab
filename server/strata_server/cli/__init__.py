"""The `strata` command (`main.app`): `serve` and `migrate` run the server and
manage its schema, `token` manages bearer tokens in the database itself, and the
operator commands (audit, index, cleanup, usage, check, quota, export, import)
are clients of a running server, built on `strata.Client`."""
