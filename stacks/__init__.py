"""CDK code only: the core stack, one stack per dataset, and their small helpers."""
