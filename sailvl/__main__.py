"""Entry point for `python -m sailvl` (what `torchrun -m sailvl train ...` runs)."""

from sailvl.cli import main

if __name__ == "__main__":
    main()
