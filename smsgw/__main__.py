from smsgw.commands.main import main

main()
