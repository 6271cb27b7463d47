"""Pulumi's entry point (`main: infra/`) and `python -m infra render ...`."""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run by Pulumi as a script: make `infra` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if len(sys.argv) > 1 and sys.argv[1] == "render":
    from infra.render import main

    sys.exit(main(sys.argv[1:]))
else:
    from infra.program import main

    main()
