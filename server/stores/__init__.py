"""Where jobs live: the store interface, the memory, SQLite and Redis stores, and the
factory that builds the one a URL names."""
