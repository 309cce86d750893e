"""Entry point for `python -m sailvl.cli` (what `torchrun -m sailvl.cli train ...` runs), like the `sailvl` script."""

from sailvl.cli import main

if __name__ == "__main__":
    main()
