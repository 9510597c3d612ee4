"""Real peers of Headrace in tests and benchmarks: other implementations fetched at pinned versions
by ``tests/tools/install.d/*.sh`` into a cache outside the tree, and typed helpers to run them."""
