"""`python -m mmfree ...` is the `mmfree` command."""

from mmfree.cli import main

raise SystemExit(main())
