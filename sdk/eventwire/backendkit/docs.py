"""Check or rewrite the options tables of backend docs pages: see `sync_options_tables`."""

from eventwire.backendkit._docs import main

if __name__ == "__main__":
    raise SystemExit(main())
