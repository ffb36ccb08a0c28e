"""reelgate benchmarks: each figure is a ratio against a reference measured in the same run (`make bench`)."""
