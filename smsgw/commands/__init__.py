"""The `smsgw` command line: one module per command, the group in main.py.

Adding a command `smsgw NAME`: a module here, `NAME.py`, with a click command called
`command` (options from options.py: `@config_options` gives --config and --redis,
`load()` the settings, `run_async()` / `with_app()` the store), and one line in
main.py's COMMANDS. A group of subcommands under `smsgw admin` (e.g. `admin_user.py`
with a click group called `group`): one line in main.py's ADMIN_COMMANDS.
"""
