from smsgw.commands.cli import main

main()
