"""The `smsgw` command line: one module per command."""
