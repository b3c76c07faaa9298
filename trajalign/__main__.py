from trajalign.cli import main

main()
