from trajalign.cli import main

# guarded: a process that multiprocessing spawns may import this module again
if __name__ == "__main__":
    main()
