"""``python -m clone3_fuzz``: the same as the ``clone3-fuzz`` command."""

from .cli import main

raise SystemExit(main())
