"""``python -m client_core``: the headless runner (same as ``videosim-client``)."""

from client_core.runner import main

raise SystemExit(main())
