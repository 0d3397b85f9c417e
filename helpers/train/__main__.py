"""`python -m helpers.train`: see helpers.train.cli."""

from helpers.train.cli import main

if __name__ == "__main__":
    main()
