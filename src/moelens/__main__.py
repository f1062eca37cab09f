"""``python -m moelens`` is the same as the ``moelens`` console script."""

from moelens.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
