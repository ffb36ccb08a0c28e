"""Pure rules of reelgate: no I/O, and no imports from the rest of the package."""
