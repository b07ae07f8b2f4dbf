"""Shared, pure-Python/PySpark library of the Glue jobs (shipped with them as dwlib.zip).

Also imported by the CDK app and the `dw` command for configuration and naming, so that
AWS and a laptop agree on every name and rule.
"""
