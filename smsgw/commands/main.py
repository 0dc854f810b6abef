"""The `smsgw` command line: the group, and the one list of its commands.

Exit status: 0 done, 1 failed, 2 bad usage or bad input file (commands/options.py).
"""

from __future__ import annotations

import click

from smsgw.commands import (
    admin,
    admin_card,
    admin_user,
    console,
    demo,
    fake_smsc,
    loadtest,
    replay,
    run,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="smsgw")
def main() -> None:
    """smsgw: an SMS gateway command processor.

    Subscribers text commands to short codes (credit transfer at 1112, bank-card OTP at
    7000, account enquiry at 1113); smsgw answers by SMS over SMPP. Start with
    `smsgw demo`.
    """


# One line per command: its module's `command` (or `group`), in the order `--help` shows.
COMMANDS: list[click.Command] = [
    demo.command,
    run.command,
    fake_smsc.command,
    replay.command,
    loadtest.command,
    console.command,
    admin.group,
]
ADMIN_COMMANDS: list[click.Command] = [  # `smsgw admin ...` groups of their own modules
    admin_card.group,
    admin_user.group,
]

for each in COMMANDS:
    main.add_command(each)
for each in ADMIN_COMMANDS:
    admin.group.add_command(each)
