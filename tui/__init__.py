"""The videosim dashboard: a Textual app that spawns jobs, watches them poll, and compares
polling policies. Build one with :func:`tui.app.make_app`; run it with ``videosim`` or
``python -m tui`` (see docs/tui.md). It reaches the server only through ``client_core``.
"""
