"""Section 7: the test protocol (crops x models -> Table 3), metrics, and the report."""
