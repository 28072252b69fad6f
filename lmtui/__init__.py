"""lmtui: run transformer language models in a terminal and see what happens inside them."""

__version__ = "0.1.0"
