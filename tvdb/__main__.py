from tvdb.cli import main

main()
