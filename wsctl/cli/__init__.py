"""Command-line interface: one module per command; bodies only parse and call the library."""
