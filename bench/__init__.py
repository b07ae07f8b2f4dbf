"""The benchmark suite behind `make bench`: see bench/README.md."""
