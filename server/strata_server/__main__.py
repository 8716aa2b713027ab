"""`python -m strata_server` is the `strata` command."""

from strata_server.cli.main import main

main()
