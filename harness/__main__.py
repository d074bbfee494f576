"""`python -m harness` runs the CLI."""

from harness.cli import main

raise SystemExit(main())
