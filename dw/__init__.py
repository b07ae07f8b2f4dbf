"""The `dw` command: run the pipeline and query the lake locally."""
