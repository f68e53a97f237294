from knowrec.cli import main

main()
